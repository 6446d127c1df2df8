// cfsboot prepare: the checks on a real Debian tree (an overlay over the cached debootstrap
// minbase tree, so nothing is copied and the cache is never changed) and --fix putting the
// cfsboot parts in: cfsboot with its dependencies, node, the health unit, tmp.mount, /sysroot
// and an initramfs built for the tree's kernel (the 6.12 test kernel).
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {nodeVersionOk, runChecks} from '../src/prepare/checks.js'
import {TreeFacts} from '../src/prepare/inspect.js'
import {resolveInTree, whichInTree} from '../src/prepare/tree-path.js'
import {REPO, RUN_JS, schemaErrors} from './helpers/sysroot.js'
import {needRoot, needTool, run} from './helpers/tools.js'

const MINBASE = '/var/cache/cfsboot-test/debian-minbase'
const KERNEL = '/var/cache/cfsboot-test/kernel'

interface Check {
  id: string
  ok: boolean
  level: string
  remedy: string | null
  packages: string[]
}
interface Result {
  ok: boolean
  fixed: string[]
  checks: Check[]
}

function prepareJson(tree: string, ...args: string[]): {code: number | null; json: Result; stderr: string} {
  const r = spawnSync(process.execPath, [RUN_JS, 'prepare', tree, '--json', ...args], {
    cwd: REPO,
    encoding: 'utf8',
  })
  const json = JSON.parse(r.stdout) as Result
  assert.equal(schemaErrors('prepare', json), '')
  return {code: r.status, json, stderr: r.stderr}
}

const check = (r: Result, id: string): Check => r.checks.find((c) => c.id === id)!

function skipReason(): string | false {
  if (!existsSync(join(MINBASE, 'etc', 'debian_version'))) return `${MINBASE} is missing (.ci/run makes it)`
  if (!existsSync(join(KERNEL, 'kver'))) return `${KERNEL} is missing (.ci/run makes it)`
  return (
    needRoot('an overlay mount of the minbase tree') || needTool('dracut', 'dracut-core') || needTool('npm')
  )
}

/** A writable view of the minbase tree: overlayfs with its upper dir under /tmp. */
function overlayTree(t: {after: (fn: () => void) => void}): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfsboot-prepare-'))
  for (const d of ['upper', 'work', 'tree']) mkdirSync(join(dir, d))
  run('mount', [
    '-t',
    'overlay',
    'overlay',
    '-o',
    `lowerdir=${MINBASE},upperdir=${dir}/upper,workdir=${dir}/work`,
    `${dir}/tree`,
  ])
  t.after(() => {
    spawnSync('umount', [`${dir}/tree`])
    rmSync(dir, {recursive: true, force: true})
  })
  return join(dir, 'tree')
}

test('paths resolve inside the tree: absolute links restart at its root, .. never leaves it', async () => {
  const tree = mkdtempSync(join(tmpdir(), 'cfsboot-treepath-'))
  try {
    mkdirSync(join(tree, 'usr', 'bin'), {recursive: true})
    symlinkSync('usr/bin', join(tree, 'bin'))
    writeFileSync(join(tree, 'usr', 'bin', 'tool'), '#!/bin/sh\n', {mode: 0o755})
    symlinkSync('/bin/tool', join(tree, 'usr', 'bin', 'abs'))
    symlinkSync('../../../../../usr/bin/tool', join(tree, 'usr', 'bin', 'up'))
    symlinkSync('/etc/passwd', join(tree, 'usr', 'bin', 'host'))
    symlinkSync('loop', join(tree, 'loop'))
    assert.equal(await resolveInTree(tree, '/bin/tool'), join(tree, 'usr', 'bin', 'tool'))
    assert.equal(await resolveInTree(tree, '/usr/bin/abs'), join(tree, 'usr', 'bin', 'tool'))
    assert.equal(await resolveInTree(tree, '/usr/bin/up'), join(tree, 'usr', 'bin', 'tool'))
    assert.equal(await resolveInTree(tree, '/usr/bin/host'), null) // the host's /etc/passwd is not the tree's
    assert.equal(await resolveInTree(tree, '/loop'), null)
    assert.equal(await whichInTree(tree, 'tool'), '/usr/bin/tool')
    assert.equal(await whichInTree(tree, 'passwd'), null)
  } finally {
    rmSync(tree, {recursive: true, force: true})
  }
})

test('node versions: 20.19 and later pass', () => {
  for (const v of ['v20.19.0', 'v20.20.2', 'v22.1.0', 'v24.0.0']) assert.ok(nodeVersionOk(v), v)
  for (const v of ['v18.19.0', 'v20.18.9', 'v12.0.0', 'garbage', null])
    assert.ok(!nodeVersionOk(v), String(v))
})

test('checks judge facts: a ready tree passes; a wrong initramfs flavour or an old node is fixable', () => {
  const facts: TreeFacts = {
    tree: '/t',
    kernel: {
      kver: '6.12',
      dir: '/usr/lib/modules/6.12',
      vmlinuz: true,
      initramfs: true,
      bootVmlinuz: null,
      modulesDep: true,
    },
    initramfs: {cfsboot: true, flavour: 'shell'},
    missingDirs: [],
    node: {path: '/usr/local/bin/node', version: 'v20.19.1'},
    missingTools: [],
    systemd: true,
    init: true,
    tmp: 'tmp.mount',
    tmpMountUnit: '/usr/share/systemd/tmp.mount',
    health: {program: true, unit: true, enabled: true},
    cfsboot: {version: '0.1.0', ours: '0.1.0', wrapper: true, dependencies: true},
  }
  assert.ok(runChecks(facts).every((c) => c.ok))
  assert.ok(runChecks(facts, 'shell').every((c) => c.ok))
  const sd = runChecks(facts, 'systemd').find((c) => c.id === 'initramfs')!
  assert.deepEqual([sd.ok, sd.remedy], [false, 'fix'])
  const old = runChecks({...facts, node: {path: '/usr/bin/node', version: 'v18.19.0'}}).find(
    (c) => c.id === 'node',
  )!
  assert.deepEqual([old.ok, old.remedy], [false, 'fix'])
  const noCfs = runChecks({...facts, initramfs: {cfsboot: false, flavour: null}}).find(
    (c) => c.id === 'initramfs',
  )!
  assert.deepEqual([noCfs.ok, noCfs.remedy], [false, 'fix'])
  const tools = runChecks({...facts, missingTools: ['losetup', 'flock', 'mount']}).find(
    (c) => c.id === 'tools',
  )!
  assert.deepEqual(tools.packages, ['mount', 'util-linux'])
  const noHealthUnit = runChecks({...facts, health: {program: true, unit: true, enabled: false}}).find(
    (c) => c.id === 'health',
  )!
  assert.deepEqual([noHealthUnit.ok, noHealthUnit.remedy], [false, 'fix'])
  const older = runChecks({...facts, cfsboot: {...facts.cfsboot, version: '0.0.9'}}).find(
    (c) => c.id === 'cfsboot',
  )!
  assert.deepEqual([older.ok, older.remedy], [false, 'fix'])
  // Without systemd the program alone is enough (another init starts it).
  assert.ok(
    runChecks({...facts, systemd: false, health: {program: true, unit: false, enabled: false}}).every(
      (c) => c.ok,
    ),
  )
})

test(
  'a bare minbase tree: what is missing, what --fix cannot do (no kernel, no fsverity)',
  {skip: skipReason()},
  (t) => {
    const tree = overlayTree(t)
    const before = prepareJson(tree)
    assert.equal(before.code, 3, before.stderr)
    assert.equal(before.json.ok, false)
    assert.deepEqual(before.json.fixed, [])
    assert.deepEqual(check(before.json, 'kernel').packages, ['linux-image-amd64'])
    assert.deepEqual(check(before.json, 'tools').packages, ['fsverity'])
    for (const id of ['directories', 'node', 'tmp', 'health', 'cfsboot'])
      assert.equal(check(before.json, id).remedy, 'fix', id)
    assert.ok(!existsSync(join(tree, 'sysroot')), 'checking changed nothing')

    // --fix without the npm step: a node that is too old is replaced, /sysroot made, and the
    // kernel and fsverity stay reported with their packages.
    writeFileSync(join(tree, 'usr', 'bin', 'node'), '#!/bin/sh\necho v18.19.0\n', {mode: 0o755})
    const old = prepareJson(tree)
    assert.match(JSON.stringify(check(old.json, 'node')), /v18\.19\.0/)
    const fixed = prepareJson(tree, '--fix')
    assert.equal(fixed.code, 3)
    assert.deepEqual(check(fixed.json, 'kernel').packages, ['linux-image-amd64'])
    assert.deepEqual(check(fixed.json, 'tools').packages, ['fsverity'])
    assert.ok(!fixed.json.fixed.includes('kernel') && !fixed.json.fixed.includes('initramfs'))
    for (const id of ['directories', 'node', 'tmp', 'health', 'cfsboot']) {
      assert.ok(fixed.json.fixed.includes(id), id)
      assert.ok(check(fixed.json, id).ok, id)
    }
    assert.match(readFileSync(join(tree, 'etc', 'fstab'), 'utf8'), /^tmpfs \/tmp tmpfs /m) // no systemd: fstab
    assert.equal(readFileSync(join(tree, 'usr', 'bin', 'node'), 'utf8'), '#!/bin/sh\necho v18.19.0\n') // not ours to change
    assert.match(readFileSync(join(tree, 'usr', 'bin', 'cfsboot'), 'utf8'), /exec \/usr\/local\/bin\/node /)
    const version = spawnSync('chroot', [tree, 'cfsboot', '--version'], {encoding: 'utf8'})
    assert.equal(version.status, 0, version.stderr)
    assert.match(version.stdout, /^cfsboot\/0\./)
    // A real command through oclif (its command modules and cli/ helpers), not only the version
    // short cut: outside a booted device, status says so with its error code.
    const status = spawnSync('chroot', [tree, 'cfsboot', 'status', '--json'], {encoding: 'utf8'})
    assert.equal(status.status, 3, status.stderr)
    assert.equal((JSON.parse(status.stdout) as {error: {code: string}}).error.code, 'ENOTDEVICE')
  },
)

test(
  'a tree with a kernel and systemd: --fix makes it ready, and a second run has nothing to do',
  {skip: skipReason()},
  (t) => {
    const tree = overlayTree(t)
    const kver = readFileSync(join(KERNEL, 'kver'), 'utf8').trim()
    // Debian's kernel package layout: modules in /lib/modules (merged /usr), the kernel in /boot.
    cpSync(join(KERNEL, 'root', 'lib', 'modules', kver), join(tree, 'usr', 'lib', 'modules', kver), {
      recursive: true,
    })
    cpSync(join(KERNEL, 'root', 'boot', `vmlinuz-${kver}`), join(tree, 'boot', `vmlinuz-${kver}`))
    cpSync('/usr/bin/fsverity', join(tree, 'usr', 'bin', 'fsverity'))
    // What the systemd package puts where the checks look (a real systemd is too large for this test).
    mkdirSync(join(tree, 'usr', 'lib', 'systemd'), {recursive: true})
    writeFileSync(join(tree, 'usr', 'lib', 'systemd', 'systemd'), '', {mode: 0o755})
    mkdirSync(join(tree, 'usr', 'share', 'systemd'), {recursive: true})
    writeFileSync(
      join(tree, 'usr', 'share', 'systemd', 'tmp.mount'),
      '[Mount]\nWhat=tmpfs\nWhere=/tmp\nType=tmpfs\n',
    )

    const before = prepareJson(tree)
    assert.equal(before.code, 3)
    assert.equal(check(before.json, 'kernel').remedy, 'fix') // in /boot, not in the modules dir
    assert.equal(check(before.json, 'initramfs').remedy, 'fix')

    const t0 = Date.now()
    const fixed = prepareJson(tree, '--fix', '--add-drivers', 'virtio_blk')
    console.log(`# prepare --fix (cfsboot + npm ci, health, tmp.mount, initramfs): ${Date.now() - t0} ms`)
    assert.equal(fixed.code, 0, fixed.stderr)
    assert.equal(fixed.json.ok, true)
    for (const c of fixed.json.checks) assert.ok(c.ok, `${c.id}: ${JSON.stringify(c)}`)
    for (const id of ['kernel', 'initramfs', 'directories', 'node', 'tmp', 'health', 'cfsboot'])
      assert.ok(fixed.json.fixed.includes(id), id)

    const moddir = join(tree, 'usr', 'lib', 'modules', kver)
    assert.deepEqual(
      readFileSync(join(moddir, 'vmlinuz')),
      readFileSync(join(KERNEL, 'root', 'boot', `vmlinuz-${kver}`)),
    )
    const listing = run('lsinitrd', [join(moddir, 'initramfs.img')])
    assert.match(listing, /hooks\/mount\/90-cfsboot-mount\.sh/)
    assert.match(listing, /virtio_blk/)
    const etcUnits = join(tree, 'etc', 'systemd', 'system')
    assert.equal(readlinkSync(join(etcUnits, 'tmp.mount')), '/usr/share/systemd/tmp.mount')
    assert.equal(
      readlinkSync(join(etcUnits, 'local-fs.target.wants', 'tmp.mount')),
      '/etc/systemd/system/tmp.mount',
    )
    const unit = '/usr/lib/systemd/system/cfsboot-health.service'
    assert.equal(readlinkSync(join(etcUnits, 'multi-user.target.wants', 'cfsboot-health.service')), unit)
    assert.equal(
      readlinkSync(join(etcUnits, 'boot-complete.target.requires', 'cfsboot-health.service')),
      unit,
    )
    assert.ok(!/^tmpfs \/tmp/m.test(readFileSync(join(tree, 'etc', 'fstab'), 'utf8')), 'tmp.mount, not fstab')
    assert.ok(existsSync(join(tree, 'usr', 'lib', 'cfsboot', 'node_modules', '@oclif', 'core')))
    assert.ok(
      !existsSync(join(tree, 'usr', 'lib', 'cfsboot', 'node_modules', 'typescript')),
      'no dev dependencies',
    )
    assert.ok(!existsSync(join(tree, 'usr', 'lib', 'cfsboot', 'dist', 'test')), 'no tests')

    const again = prepareJson(tree, '--fix')
    assert.equal(again.code, 0)
    assert.deepEqual(again.json.fixed, [])

    // Asking for the systemd flavour: the shell-flavour initramfs no longer passes; --fix rebuilds it.
    const wantSd = prepareJson(tree, '--flavour', 'systemd')
    assert.equal(wantSd.code, 3)
    assert.equal(check(wantSd.json, 'initramfs').remedy, 'fix')
    const sd = prepareJson(tree, '--fix', '--flavour', 'systemd', '--add-drivers', 'virtio_blk')
    assert.equal(sd.code, 0, sd.stderr)
    assert.deepEqual(sd.json.fixed, ['initramfs'])
    const sdListing = run('lsinitrd', [join(moddir, 'initramfs.img')])
    assert.match(sdListing, /initrd-root-fs\.target\.requires\/cfsboot-setup-root\.service/)
    assert.doesNotMatch(sdListing, /hooks\/mount\/90-cfsboot-mount\.sh/)
  },
)

test('initramfs: systemd modules need --flavour systemd; a bad flavour is a usage error', () => {
  const out = join(tmpdir(), `cfsboot-initramfs-${process.pid}.img`)
  const bad = spawnSync(process.execPath, [RUN_JS, 'initramfs', '--add-modules', 'systemd', '-o', out], {
    encoding: 'utf8',
  })
  assert.equal(bad.status, 3, bad.stderr)
  const flavour = spawnSync(process.execPath, [RUN_JS, 'initramfs', '--flavour', 'upstart', '-o', out], {
    encoding: 'utf8',
  })
  assert.equal(flavour.status, 2)
  assert.ok(!existsSync(out))
})
