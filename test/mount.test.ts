// Real composefs mounts: build an image with our own buildImage, mount it through the CLI,
// and compare the mounted tree with its source, entry by entry. Needs root, the kernel's
// EROFS and overlayfs, and the tools .ci/run installs.

import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {test, type TestContext} from 'node:test'

import {buildImage} from '../src/build.js'
import {ExitCode} from '../src/errors.js'
import {enableVerity} from '../src/system/fsverity.js'
import {kernelHasFsVerity} from '../src/system/kernel.js'
import {describeTree, diffTrees} from './helpers/compare-trees.js'
import {makeSampleTree, REPO_ROOT, sampleTreeSkip} from './helpers/sample-tree.js'
import {needRoot, needTool} from './helpers/tools.js'

const CLI = join(REPO_ROOT, 'bin/run.js')
const MINBASE = process.env.CFSBOOT_MINBASE ?? '/var/cache/cfsboot-test/debian-minbase'

function mountSkip(): string | false {
  return (
    needRoot('mounting') ||
    needTool('fsck.erofs', 'erofs-utils') ||
    needTool('getfattr', 'attr') ||
    needTool('losetup', 'mount') ||
    (readFileSync('/proc/filesystems', 'utf8').includes('erofs') ? false : 'this kernel has no EROFS') ||
    sampleTreeSkip()
  )
}
const skip = mountSkip()

function cli(args: string[]): {status: number; stdout: string; stderr: string} {
  const r = spawnSync(process.execPath, [CLI, ...args], {encoding: 'utf8'})
  return {status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr}
}

function mountedAt(path: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === path)
}

function loopsFor(image: string): string[] {
  return execFileSync('losetup', ['-a'], {encoding: 'utf8'})
    .split('\n')
    .filter((l) => l.includes(`(${image})`))
}

function stagingLeftovers(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes('/run/cfsboot/mnt/'))
}

/** A scratch directory that is unmounted (whatever the test did) and removed afterwards. */
function workDir(t: TestContext): string {
  const dir = mkdtempSync('/var/tmp/cfsboot-mount-')
  t.after(() => {
    for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n').reverse()) {
      const mp = line.split(' ')[4]
      if (mp && mp.startsWith(dir + '/')) spawnSync('umount', ['--lazy', mp])
    }
    rmSync(dir, {recursive: true, force: true})
  })
  return dir
}

/** `diff -r --no-dereference`, accepting only its notes about special files of the same type. */
function diffR(a: string, b: string): string[] {
  const r = spawnSync('diff', ['-r', '--no-dereference', a, b], {encoding: 'latin1'})
  assert.ok(r.status === 0 || r.status === 1, `diff failed: ${r.stderr}`)
  const sameKind = /^File .* is a (.+) while file .* is a (.+)$/
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .filter((l) => {
      const m = sameKind.exec(l)
      return !(m && m[1] === m[2])
    })
}

function fsckErofs(image: string): void {
  const r = spawnSync('fsck.erofs', [image], {encoding: 'utf8'})
  assert.equal(r.status, 0, `fsck.erofs ${image}: ${r.stdout}${r.stderr}`)
}

async function buildAndMount(
  t: TestContext,
  source: string,
  dir: string,
): Promise<{image: string; objects: string; mnt: string; digest: string}> {
  const image = join(dir, 'image.cfs')
  const objects = join(dir, 'objects')
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const built = await buildImage({source, output: image, objects})
  fsckErofs(image)
  const r = cli(['mount', image, mnt, '--objects', objects, '--digest', built.digest, '--json'])
  assert.equal(r.status, 0, r.stderr)
  t.after(() => {
    if (mountedAt(mnt)) spawnSync('umount', ['--lazy', mnt])
  })
  const result = JSON.parse(r.stdout) as {digest: string; mountpoint: string}
  assert.equal(result.digest, built.digest)
  assert.equal(result.mountpoint, mnt)
  assert.ok(mountedAt(mnt))
  return {image, objects, mnt, digest: built.digest}
}

async function assertSameTree(source: string, mnt: string): Promise<void> {
  assert.deepEqual(diffR(source, mnt), [], 'diff -r --no-dereference')
  const [a, b] = [await describeTree(source), await describeTree(mnt)]
  assert.deepEqual(diffTrees(a, b), [], 'type, mode, owner, size, mtime, nlink, symlink, rdev, xattrs')
  assert.equal(a.size, b.size)
}

function umountAndCheck(image: string, mnt: string): void {
  const r = cli(['umount', mnt])
  assert.equal(r.status, 0, r.stderr)
  assert.equal(mountedAt(mnt), false, 'the overlay is gone')
  assert.deepEqual(loopsFor(image), [], 'no loop device left on the image')
  assert.deepEqual(stagingLeftovers(), [], 'no staging EROFS mount left')
}

test('sample tree: build, mount, identical to the source, clean umount', {skip}, async (t) => {
  const dir = workDir(t)
  const source = join(dir, 'tree')
  makeSampleTree(source)
  const {image, mnt} = await buildAndMount(t, source, dir)

  await assertSameTree(source, mnt)
  assert.match(readFileSync(join(mnt, 'etc/os-release'), 'utf8'), /NAME=cfsboot-sample/)
  assert.equal(execFileSync(join(mnt, 'usr/bin/hello'), {encoding: 'utf8'}).length > 0, true)

  umountAndCheck(image, mnt)
  // Umounting again is refused with one line.
  const again = cli(['umount', mnt, '--json'])
  assert.equal(again.status, ExitCode.BadInput)
  assert.equal(JSON.parse(again.stdout).error.code, 'EINVALID')
})

test('a wrong --digest is refused (exit 4) and nothing is mounted', {skip}, async (t) => {
  const dir = workDir(t)
  const source = join(dir, 'tree')
  makeSampleTree(source)
  const image = join(dir, 'image.cfs')
  const objects = join(dir, 'objects')
  const mnt = join(dir, 'mnt')
  mkdirSync(mnt)
  const built = await buildImage({source, output: image, objects})
  fsckErofs(image)
  const wrong = (built.digest[0] === '0' ? '1' : '0') + built.digest.slice(1)

  const r = cli(['mount', image, mnt, '--objects', objects, '--digest', wrong, '--json'])
  assert.equal(r.status, ExitCode.Verification, r.stderr)
  assert.equal(JSON.parse(r.stdout).error.code, 'EDIGEST')
  assert.equal(r.stderr.trim().split('\n').length <= 4, true, 'one error line (oclif may wrap it)')
  assert.equal(mountedAt(mnt), false)
  assert.deepEqual(loopsFor(image), [])
  assert.deepEqual(stagingLeftovers(), [])

  const bad = cli(['mount', image, mnt, '--objects', objects, '--digest', 'xyz'])
  assert.equal(bad.status, ExitCode.BadInput)
  assert.equal(mountedAt(mnt), false)
})

test(
  '--verity require: refused where the kernel has no fs-verity, enforced where it has',
  {skip},
  async (t) => {
    const dir = workDir(t)
    const source = join(dir, 'tree')
    makeSampleTree(source)
    const kernel = await kernelHasFsVerity()

    if (kernel === false) {
      const image = join(dir, 'image.cfs')
      const objects = join(dir, 'objects')
      const mnt = join(dir, 'mnt')
      mkdirSync(mnt)
      await buildImage({source, output: image, objects})
      const r = cli(['mount', image, mnt, '--objects', objects, '--verity', 'require', '--json'])
      assert.equal(r.status, ExitCode.Unsupported, r.stderr)
      assert.equal(JSON.parse(r.stdout).error.code, 'EUNSUPPORTED')
      assert.equal(mountedAt(mnt), false)
      assert.deepEqual(loopsFor(image), [])
      return
    }

    // A kernel with fs-verity: objects and image on a filesystem that supports it (ext4 with
    // the verity feature and 4 KiB blocks), fs-verity enabled on each, then a verified mount.
    const noTool = needTool('mkfs.ext4', 'e2fsprogs') || needTool('fsverity', 'fsverity')
    if (noTool) return t.skip(noTool)
    const fsImage = join(dir, 'verity.ext4')
    const fsMount = join(dir, 'verityfs')
    mkdirSync(fsMount)
    execFileSync('truncate', ['-s', '64M', fsImage])
    execFileSync('mkfs.ext4', ['-q', '-b', '4096', '-O', 'verity', fsImage])
    execFileSync('mount', ['-o', 'loop', fsImage, fsMount])
    t.after(() => spawnSync('umount', ['--lazy', fsMount]))
    const image = join(fsMount, 'image.cfs')
    const objects = join(fsMount, 'objects')
    const mnt = join(dir, 'mnt')
    mkdirSync(mnt)
    const built = await buildImage({source, output: image, objects})
    fsckErofs(image)
    const objectFiles = execFileSync('find', [objects, '-type', 'f'], {encoding: 'utf8'})
      .split('\n')
      .filter(Boolean)
    for (const f of [...objectFiles, image]) await enableVerity(f)

    const r = cli([
      'mount',
      image,
      mnt,
      '--objects',
      objects,
      '--digest',
      built.digest,
      '--verity',
      'require',
      '--json',
    ])
    assert.equal(r.status, 0, r.stderr)
    t.after(() => {
      if (mountedAt(mnt)) spawnSync('umount', ['--lazy', mnt])
    })
    const result = JSON.parse(r.stdout) as {verity: string; digestSource: string}
    assert.equal(result.verity, 'require')
    assert.equal(result.digestSource, 'kernel')
    await assertSameTree(source, mnt)
    umountAndCheck(image, mnt)
  },
)

test('Debian minbase tree: build, mount, identical to the source', {skip}, async (t) => {
  if (!existsSync(MINBASE)) {
    return t.skip(`no corpus at ${MINBASE} (make it with test/helpers/corpus.sh debian-minbase)`)
  }
  const dir = workDir(t)
  const {image, mnt} = await buildAndMount(t, MINBASE, dir)
  await assertSameTree(MINBASE, mnt)
  umountAndCheck(image, mnt)
})
