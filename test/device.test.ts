// The deployment verbs on a "device": no --sysroot, no --boot-dir. A loop disk laid out the way
// `install to-disk` lays it out (GPT: cfsboot-esp FAT + cfsboot-root ext4) stands in for the
// booted machine; its root partition is mounted where the device's /sysroot would be
// (CFSBOOT_DEVICE_SYSROOT) and the ESP is found and mounted by cfsboot itself. Then the bad
// input of issue 9: no ESP, two ESPs, an unmountable ESP, a read-only root, no fsverity tool.
// The development host's kernel has no FAT (machine-facts), so the ESP stand-in here is ext4
// when vfat is missing (cfsboot mounts what blkid finds); test/device-vm.test.ts boots a real
// FAT ESP.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {initSysroot} from '../src/deploy/deploy.js'
import {sysrootPaths} from '../src/deploy/paths.js'
import {Status} from '../src/deploy/status.js'
import {makeImage, TestImage} from './helpers/images.js'
import {CliResult, diffSnapshots, notOneClearError, REPO, RUN_JS, snapshot} from './helpers/sysroot.js'
import {isRoot, needTool, run} from './helpers/tools.js'

function skipReason(): string | false {
  if (!isRoot()) return 'loop devices and mounts need root'
  for (const [t, p] of [
    ['losetup', 'mount'],
    ['sfdisk', 'fdisk'],
    ['partx', 'util-linux'],
    ['blkid', 'util-linux'],
    ['mkfs.vfat', 'dosfstools'],
    ['mkfs.ext4', 'e2fsprogs'],
  ] as const) {
    const r = needTool(t, p)
    if (r) return r
  }
  return false
}
const SKIP = skipReason()
const HAS_VFAT = /\svfat$/m.test(readFileSync('/proc/filesystems', 'utf8'))

const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'
const ESP_TYPE = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'

describe('on a device: default paths', {skip: SKIP}, () => {
  let work = ''
  let loop = ''
  let sysroot = ''
  let conf = ''
  let v1: TestImage
  let v2: TestImage
  const mine: string[] = [] // mount points this test made, unmounted at the end
  const env: Record<string, string> = {}

  const part = (n: number): string => `${loop}p${n}`
  const setName = (n: number, name: string): void => {
    // Not re-read by the kernel (its partitions are in use); blkid reads the table from the disk.
    run('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', '--part-label', loop, String(n), name])
  }
  const mountsOf = (dev: string): string[] =>
    readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .filter((l) => l.startsWith(dev + ' '))
      .map((l) => l.split(' ')[1]!)

  function device(args: string[], extra: Record<string, string> = {}): Promise<CliResult> {
    const child = spawn(process.execPath, [RUN_JS, ...args, '--config', conf], {
      cwd: REPO,
      env: {...process.env, NO_COLOR: '1', ...env, ...extra},
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    return new Promise((res, rej) => {
      child.on('error', rej)
      child.on('close', (code, signal) => res({code, signal, stdout, stderr}))
    })
  }

  /** The ESP's files, read through a mount of our own. */
  function espFiles(sub: string): string[] {
    const dir = mkdtempSync(join(work, 'look-'))
    run('mount', ['-o', 'ro', part(1), dir])
    try {
      return readdirSync(join(dir, sub)).sort()
    } finally {
      run('umount', [dir])
      rmSync(dir, {recursive: true})
    }
  }

  before(() => {
    work = mkdtempSync(join(tmpdir(), 'cfsboot-device-test-'))
    const disk = join(work, 'disk.img')
    run('truncate', ['-s', '160M', disk])
    run(
      'sfdisk',
      ['--quiet', disk],
      `label: gpt\nsize=40MiB, type=${ESP_TYPE}, name=cfsboot-esp\nsize=80MiB, name=cfsboot-root\nsize=20MiB, type=${ESP_TYPE}, name=spare\n`,
    )
    loop = run('losetup', ['--show', '--find', '--partscan', disk]).trim()
    for (let i = 0; i < 50 && !readdirSync('/dev').includes(`${loop.slice(5)}p3`); i++) {
      run('partx', ['--add', loop]).toString()
      run('sleep', ['0.1'])
    }
    if (HAS_VFAT) run('mkfs.vfat', [part(1)])
    else run('mkfs.ext4', ['-q', part(1)])
    run('mkfs.ext4', ['-q', '-b', '4096', '-O', 'verity', part(2)])
    sysroot = join(work, 'sysroot')
    mkdirSync(sysroot)
    run('mount', [part(2), sysroot])
    mine.push(sysroot)
    conf = join(work, 'cfsboot.conf')
    writeFileSync(conf, '[boot]\ntries = 0\n')
    mkdirSync(join(work, 'run'))
    mkdirSync(join(work, 'efivars'))
    Object.assign(env, {
      CFSBOOT_DEVICE_SYSROOT: sysroot,
      CFSBOOT_RUN_DIR: join(work, 'run'),
      CFSBOOT_CMDLINE: join(work, 'cmdline'),
      CFSBOOT_EFIVARS_DIR: join(work, 'efivars'),
      CFSBOOT_ESP_CANDIDATES: '',
      CFSBOOT_ESP_MOUNT_ROOT: join(work, 'espmounts'),
    })
    v1 = makeImage(join(work, 'v1'), {version: '1'})
    v2 = makeImage(join(work, 'v2'), {version: '2', files: {'/etc/motd': 'version two '.repeat(20)}})
  })

  after(() => {
    for (const m of mine.reverse()) run('umount', ['--lazy', m])
    if (loop) run('losetup', ['--detach', loop])
    if (work) rmSync(work, {recursive: true, force: true})
  })

  test('deploy, status, rollback, pin, unpin, gc, fsck without flags use the ESP, mounted for the command', async () => {
    await initSysroot(sysrootPaths(sysroot))
    rmSync(join(sysroot, 'boot'), {recursive: true}) // an installed root has no boot/: it is on the ESP
    const d = await device(['deploy', v1.image, '--objects', v1.objects])
    assert.equal(d.code, 0, d.stderr)
    // The entry is on the ESP, not in SYSROOT/boot, and the ESP is unmounted again.
    assert.ok(
      espFiles('loader/entries').some((n) => n.startsWith('cfsboot-')),
      'no entry on the ESP',
    )
    assert.deepEqual(readdirSync(sysroot).includes('boot'), false, 'deploy wrote SYSROOT/boot')
    assert.deepEqual(mountsOf(part(1)), [], 'the ESP stayed mounted')
    assert.deepEqual(readdirSync(join(work, 'espmounts')), [], 'the private mount point stayed')

    writeFileSync(join(work, 'run', 'booted.json'), JSON.stringify({digest: v1.digest}))
    // Already mounted (as /boot would be): used where it is, and left mounted.
    const boot = join(work, 'boot')
    mkdirSync(boot)
    run('mount', [part(1), boot])
    mine.push(boot)
    const d2 = await device(['deploy', v2.image, '--objects', v2.objects])
    assert.equal(d2.code, 0, d2.stderr)
    assert.deepEqual(mountsOf(part(1)), [boot])
    assert.equal(
      readdirSync(join(boot, 'loader', 'entries')).filter((n) => n.startsWith('cfsboot-')).length,
      2,
    )
    run('umount', [boot])
    mine.pop()

    const st = await device(['status', '--json'])
    assert.equal(st.code, 0, st.stderr)
    const s = JSON.parse(st.stdout) as Status
    assert.equal(s.deployments.length, 2)
    assert.equal(s.deployments[0]!.digest, v2.digest, 'v2 is the next boot')
    for (const dep of s.deployments) assert.ok(dep.entry, `${dep.digest.slice(0, 12)} has no boot entry`)
    assert.deepEqual(mountsOf(part(1)), [])

    for (const args of [['pin', '1'], ['unpin', '1'], ['rollback'], ['fsck'], ['gc', '--dry-run']]) {
      const r = await device(args)
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    }
    const after = JSON.parse((await device(['status', '--json'])).stdout) as Status
    assert.equal(after.deployments[0]!.digest, v1.digest, 'rollback made v1 the next boot')
    assert.deepEqual(mountsOf(part(1)), [])
  })

  test('bad input: no ESP, two ESPs, an unmountable ESP, a read-only root, no fsverity tool', async () => {
    const v3 = makeImage(join(work, 'v3'), {version: '3'})
    const deploy3 = ['deploy', v3.image, '--objects', v3.objects]
    const unchanged = async (
      what: string,
      code: number,
      extra: Record<string, string> = {},
    ): Promise<void> => {
      const before = snapshot(sysroot)
      const r = await device(deploy3, extra)
      assert.equal(notOneClearError(r, code), '', what)
      assert.deepEqual(diffSnapshots(before, snapshot(sysroot)), [], `${what}: the root changed`)
      assert.deepEqual(mountsOf(part(1)), [], `${what}: the ESP stayed mounted`)
    }

    setName(1, 'other')
    await unchanged('no ESP', 5)
    setName(1, 'cfsboot-esp')
    setName(3, 'cfsboot-esp')
    await unchanged('two ESPs', 3)
    // The boot loader's LoaderDevicePartUUID says which one it booted from: no ambiguity then.
    const uuid = run('blkid', ['--probe', '-s', 'PART_ENTRY_UUID', '-o', 'value', part(1)]).trim()
    const efivar = join(work, 'efivars', `LoaderDevicePartUUID-${LOADER_GUID}`)
    writeFileSync(
      efivar,
      Buffer.concat([Buffer.from([7, 0, 0, 0]), Buffer.from(uuid.toUpperCase() + '\0', 'utf16le')]),
    )
    const st = await device(['status', '--json'])
    assert.equal(st.code, 0, st.stderr)
    rmSync(efivar)
    // Partition 3 has no filesystem: named cfsboot-esp, it cannot be mounted.
    setName(1, 'other')
    await unchanged('an unmountable ESP', 5)
    setName(3, 'spare')
    setName(1, 'cfsboot-esp')

    run('mount', ['-o', 'remount,ro', sysroot])
    try {
      await unchanged('a read-only root', 5)
    } finally {
      run('mount', ['-o', 'remount,rw', sysroot])
    }

    // A kernel with fs-verity (as the device's) and no fsverity on PATH.
    const bin = join(work, 'bin-no-fsverity')
    mkdirSync(bin)
    for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      for (const name of readdirSync(dir).filter((n) => n !== 'fsverity')) {
        try {
          symlinkSync(join(dir, name), join(bin, name))
        } catch {
          // the same name earlier on PATH
        }
      }
    }
    const kconfig = join(work, 'config')
    writeFileSync(kconfig, 'CONFIG_FS_VERITY=y\n')
    await unchanged('no fsverity tool', 5, {PATH: bin, CFSBOOT_KERNEL_CONFIG: kconfig})
    const r = await device(deploy3, {PATH: bin, CFSBOOT_KERNEL_CONFIG: kconfig})
    assert.match(r.stderr, /Debian package fsverity/)

    // Without the partition name, a mounted /boot holding cfsboot's files is the ESP.
    setName(1, 'other')
    const boot = join(work, 'boot')
    mkdirSync(boot, {recursive: true})
    run('mount', [part(1), boot])
    mine.push(boot)
    try {
      const ok = await device(deploy3, {CFSBOOT_ESP_CANDIDATES: `${join(work, 'efi')}:${boot}`})
      assert.equal(ok.code, 0, ok.stderr)
      assert.equal(
        readdirSync(join(boot, 'loader', 'entries')).filter((n) => n.startsWith('cfsboot-')).length,
        3,
      )
    } finally {
      run('umount', [boot])
      mine.pop()
      setName(1, 'cfsboot-esp')
    }
  })
})
