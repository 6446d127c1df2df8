// `cfsboot install`: real installs into disk image files through loop devices, checked from the
// outside with the tools a boot would meet (sfdisk, fsck.vfat, e2fsck, mtools, cfsboot status and
// fsck), and the safety checks, each proven to leave the target's bytes untouched.
import assert from 'node:assert/strict'
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {sysrootPaths} from '../src/deploy/paths.js'
import {SYSTEMD_BOOT_DIR} from '../src/install/esp.js'
import {ESP_TYPE_GUID, LINUX_FS_TYPE_GUID} from '../src/boot/contract.js'
import {formatBytes, parseSize, planLayout, sfdiskScript} from '../src/install/partition.js'
import {InstallResult} from '../src/install/result.js'
import {SEAL_PENDING} from '../src/boot/contract.js'
import {
  attachLoop,
  describeBlockDevice,
  detachLoop,
  loopBackingFiles,
  makeExt4,
  PartitionNode,
  refreshPartitions,
  rootDisks,
  writePartitionTable,
} from '../src/system/disk.js'
import {listFat, readFatToDir, writeDirToFat} from '../src/system/fat.js'
import {kernelHasFsVerity} from '../src/system/kernel.js'
import {statInodes} from '../src/system/debugfs.js'
import {EXT4_EXTENTS_FL, EXT4_VERITY_FL} from '../src/verity/ext4.js'
import {makeImage, TestImage} from './helpers/images.js'
import {diffSnapshots, incomplete, REPO, RUN_JS, schemaErrors, snapshot} from './helpers/sysroot.js'
import {hasTool, isRoot, run} from './helpers/tools.js'

const MiB = 1024 * 1024

function skipReason(): string | false {
  if (!isRoot()) return 'install needs root (loop devices, mkfs, mount)'
  const tools: [string, string][] = [
    ['sfdisk', 'fdisk'],
    ['partx', 'util-linux'],
    ['losetup', 'mount'],
    ['mkfs.ext4', 'e2fsprogs'],
    ['e2fsck', 'e2fsprogs'],
    ['mkfs.vfat', 'dosfstools'],
    ['fsck.vfat', 'dosfstools'],
    ['mcopy', 'mtools'],
    ['blkid', 'util-linux'],
  ]
  for (const [tool, pkg] of tools) {
    if (!hasTool(tool)) return `${tool} is not installed (Debian package ${pkg}; .ci/run installs it)`
  }
  if (!existsSync(join(SYSTEMD_BOOT_DIR, 'systemd-bootx64.efi')))
    return 'systemd-boot is not installed (Debian package systemd-boot-efi)'
  if (!existsSync('/dev/loop-control')) return 'no loop devices on this machine'
  return false
}
const SKIP = skipReason()

interface Cli {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs the CLI with stdin not a terminal (like CI and the VM test), in a private run dir. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Cli> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], {
      cwd: REPO,
      env: {
        ...process.env,
        NO_COLOR: '1',
        CFSBOOT_RUN_DIR: join(work, 'run'),
        CFSBOOT_CMDLINE: join(work, 'cmdline'),
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('error', reject)
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

/** The error code a failed `--json` run printed ({"error": {"code", …}}). */
function errorCode(r: Cli): string | undefined {
  return parseJson<{error?: {code?: string}}>(r).error?.code
}

function parseJson<T>(r: Cli): T {
  try {
    return JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`)
  }
}

/** The object paths (xx/yyyy…) in an objects directory. */
function objectPaths(dir: string): string[] {
  const out: string[] = []
  for (const xx of readdirSync(dir)) {
    if (/^[0-9a-f]{2}$/.test(xx)) for (const f of readdirSync(join(dir, xx))) out.push(`${xx}/${f}`)
  }
  return out
}

const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex')

/** Attaches a disk image file and waits for its partition devices. */
async function attach(file: string, partitions: number): Promise<{loop: string; parts: PartitionNode[]}> {
  const loop = await attachLoop(file)
  const parts = partitions ? await refreshPartitions(await describeBlockDevice(loop), partitions) : []
  return {loop, parts}
}

let work: string
let v1: TestImage
let v2: TestImage

before(() => {
  work = mkdtempSync(join(tmpdir(), 'cfsboot-install-test-'))
  const conf = {'/etc/cfsboot/cfsboot.conf': '[boot]\nkernel-args = console=ttyS0\n'}
  mkdirSync(join(work, 'v1'))
  mkdirSync(join(work, 'v2'))
  v1 = makeImage(join(work, 'v1'), {version: '1', files: conf})
  v2 = makeImage(join(work, 'v2'), {version: '2', files: {...conf, '/usr/bin/tool': 'v2 tool '.repeat(30)}})
})

after(() => {
  if (work) rmSync(work, {recursive: true, force: true})
})

describe('layout arithmetic', () => {
  test('sizes parse in binary units and refuse anything else', () => {
    assert.equal(parseSize('256M', 'x'), 256 * MiB)
    assert.equal(parseSize('2G', 'x'), 2048 * MiB)
    assert.equal(parseSize('64MiB', 'x'), 64 * MiB)
    assert.equal(parseSize('4096', 'x'), 4096)
    for (const bad of ['', '0', '-1M', '1.5G', '12Q', 'M', '99999999999999999999G'])
      assert.throws(() => parseSize(bad, '--size'), /--size must be a size/, bad)
  })

  test('the ESP starts at 1 MiB, the root follows and ends 1 MiB aligned before the backup GPT', () => {
    const l = planLayout(2048 * MiB, 256 * MiB, 512)
    assert.deepEqual(l.esp, {offset: MiB, size: 256 * MiB})
    assert.equal(l.root.offset, 257 * MiB)
    assert.equal(l.root.offset + l.root.size, 2047 * MiB)
    const script = sfdiskScript(l)
    assert.match(script, /^label: gpt$/m)
    assert.match(script, new RegExp(`start=2048, size=524288, type=${ESP_TYPE_GUID}, name="cfsboot-esp"`))
    assert.match(script, new RegExp(`type=${LINUX_FS_TYPE_GUID}, name="cfsboot-root"`))
    assert.equal(formatBytes(256 * MiB), '256 MiB')
  })
})

describe('install to-disk --via-loopback', {skip: SKIP}, () => {
  let hostOpensVerityFiles: boolean
  let disk: string
  let result: InstallResult
  let cliOut: Cli

  before(async () => {
    hostOpensVerityFiles = (await kernelHasFsVerity()) !== false
    disk = join(work, 'disk.img')
    cliOut = await cli([
      'install',
      'to-disk',
      '--via-loopback',
      disk,
      '--size',
      '160M',
      '--esp-size',
      '64M',
      '--image',
      v1.image,
      '--objects',
      v1.objects,
      '--json',
    ])
    assert.equal(cliOut.code, 0, cliOut.stderr)
    result = parseJson<InstallResult>(cliOut)
  })

  test('prints a result that follows docs/schemas/install.json', async () => {
    assert.equal(schemaErrors('install', result), '')
    assert.equal(result.digest, v1.digest)
    assert.equal(result.target.kind, 'loopback')
    assert.equal(result.target.size, 160 * MiB)
    assert.equal(result.erased, null, 'a new file erased nothing')
    assert.equal(result.config.source, 'image')
    // to-disk made the filesystem, so it seals the store itself whatever this kernel has.
    assert.equal(result.verity.state, 'presealed')
    assert.equal(result.verity.files, result.deployment.objects.count + 1, 'the image and every object')
    assert.match(cliOut.stderr, /new 160 MiB disk image/)
  })

  test('leaves no loop device attached and the file at its size', async () => {
    assert.equal((await loopBackingFiles()).has(disk), false)
    assert.equal(statSync(disk).size, 160 * MiB)
  })

  test('sfdisk sees a GPT with the ESP and the root partition, named as the boot contract says', () => {
    const dump = run('sfdisk', ['--dump', disk])
    assert.match(dump, /^label: gpt$/m)
    const lines = dump.split('\n').filter((l) => l.startsWith(disk))
    assert.equal(lines.length, 2, dump)
    assert.match(
      lines[0]!,
      new RegExp(`start=\\s*2048, size=\\s*131072, type=${ESP_TYPE_GUID},.*name="cfsboot-esp"`),
    )
    assert.match(lines[1]!, new RegExp(`type=${LINUX_FS_TYPE_GUID},.*name="cfsboot-root"`))
  })

  test('both filesystems pass their fsck; the root is a valid sysroot that status and fsck accept', async () => {
    const {loop, parts} = await attach(disk, 2)
    const mnt = join(work, 'root-mnt')
    const esp = join(work, 'esp-out')
    mkdirSync(mnt, {recursive: true})
    try {
      run('fsck.vfat', ['-n', parts[0]!.node])
      run('e2fsck', ['-fn', parts[1]!.node])
      assert.match(run('blkid', ['-p', '-o', 'export', parts[0]!.node]), /LABEL=CFSBOOT-ESP/)
      const ext4 = run('blkid', ['-p', '-o', 'export', parts[1]!.node])
      assert.match(ext4, /TYPE=ext4/)
      assert.match(ext4, /LABEL=cfsboot-root/)
      assert.match(run('dumpe2fs', ['-h', parts[1]!.node]), /Filesystem features:.*verity/)
      assert.match(run('dumpe2fs', ['-h', parts[1]!.node]), /Block size:\s+4096/)

      run('mount', ['-o', 'ro', parts[1]!.node, mnt])
      try {
        for (const p of ['composefs/objects', 'composefs/images', 'composefs/deployments', 'var'])
          assert.ok(statSync(join(mnt, p)).isDirectory(), p)
        assert.ok(existsSync(join(mnt, 'composefs/images', v1.digest)))
        assert.ok(existsSync(join(mnt, 'composefs/deployments', v1.digest, 'deployment.json')))
        assert.equal(existsSync(join(mnt, SEAL_PENDING)), false, 'pre-sealed: no seal-pending marker')
        await readFatToDir({path: disk, offset: result.partitions![0]!.offset}, esp)
        const paths = sysrootPaths(mnt, esp)
        if (hostOpensVerityFiles) assert.deepEqual(await incomplete(paths, v1.digest), [])

        const st = await cli(['status', '--sysroot', mnt, '--boot-dir', esp, '--json'])
        assert.equal(st.code, 0, st.stderr)
        const status = parseJson<{deployments: {digest: string; staged: boolean}[]}>(st)
        assert.equal(status.deployments.length, 1)
        assert.equal(status.deployments[0]!.digest, v1.digest)
        assert.equal(status.deployments[0]!.staged, true)
      } finally {
        run('umount', [mnt])
      }

      // A kernel without fs-verity refuses to open a file that has it (ENOTSUP), so here
      // `cfsboot fsck` cannot read the store; the next test checks it with debugfs instead.
      if (hostOpensVerityFiles) {
        // fsck takes the sysroot lock, which needs a writable filesystem.
        run('mount', [parts[1]!.node, mnt])
        try {
          const f = await cli(['fsck', '--sysroot', mnt, '--boot-dir', esp, '--json'])
          assert.equal(f.code, 0, f.stdout + f.stderr)
          assert.equal(parseJson<{ok: boolean}>(f).ok, true)
        } finally {
          run('umount', [mnt])
        }
      }
    } finally {
      await detachLoop(loop)
    }
  })

  test('pre-sealed: the image and every object have EXT4_VERITY_FL, their data size and their bytes', async () => {
    const {loop, parts} = await attach(disk, 2)
    const dev = parts[1]!.node
    const dumped = join(work, 'dumped')
    mkdirSync(dumped, {recursive: true})
    try {
      run('e2fsck', ['-fn', dev]) // throws on any complaint (exit code != 0)
      const files = [{fs: `/composefs/images/${v1.digest}`, source: v1.image}]
      for (const o of objectPaths(v1.objects))
        files.push({fs: `/composefs/objects/${o}`, source: join(v1.objects, o)})
      assert.ok(files.length > 2)
      const facts = await statInodes(
        dev,
        files.map((f) => f.fs),
      )
      for (const [i, f] of files.entries()) {
        const st = facts[i]!
        assert.ok(st.flags & EXT4_VERITY_FL, `${f.fs}: verity flag (flags 0x${st.flags.toString(16)})`)
        assert.ok(st.flags & EXT4_EXTENTS_FL, `${f.fs}: extents flag kept`)
        assert.equal(st.size, statSync(f.source).size, `${f.fs}: i_size is the data size`)
        // The data through debugfs (the host kernel cannot open it): the same bytes.
        const out = join(dumped, String(i))
        run('debugfs', ['-R', `dump ${f.fs} ${out}`, dev])
        assert.ok(readFileSync(out).equals(readFileSync(f.source)), `${f.fs}: content`)
      }
      const mnt = join(work, 'root-mnt-ro')
      mkdirSync(mnt, {recursive: true})
      run('mount', ['-o', 'ro', dev, mnt])
      try {
        const img = join(mnt, 'composefs/images', v1.digest)
        assert.equal(statSync(img).size, statSync(v1.image).size)
        if (hostOpensVerityFiles) {
          assert.ok(readFileSync(img).equals(readFileSync(v1.image)))
          assert.match(run('fsverity', ['measure', img]), new RegExp(`^sha256:${v1.digest} `))
        } else {
          assert.throws(() => readFileSync(img), /ENOTSUP|EOPNOTSUPP/, 'this kernel has no fs-verity')
        }
      } finally {
        run('umount', [mnt])
      }
    } finally {
      await detachLoop(loop)
    }
  })

  test('the ESP holds systemd-boot, loader.conf and the entry naming the digest', async () => {
    const esp = join(work, 'esp-check')
    await readFatToDir({path: disk, offset: MiB}, esp)
    const loader = readFileSync(join(SYSTEMD_BOOT_DIR, 'systemd-bootx64.efi'))
    assert.ok(readFileSync(join(esp, 'EFI/BOOT/BOOTX64.EFI')).equals(loader))
    assert.ok(readFileSync(join(esp, 'EFI/systemd/systemd-bootx64.efi')).equals(loader))
    const conf = readFileSync(join(esp, 'loader/loader.conf'), 'utf8')
    assert.match(conf, /^timeout 0$/m)
    assert.doesNotMatch(conf, /^default/m)
    const entries = readdirSync(join(esp, 'loader/entries'))
    assert.deepEqual(entries, [result.deployment.entry])
    const entry = readFileSync(join(esp, 'loader/entries', entries[0]!), 'utf8')
    assert.match(entry, new RegExp(`^options .*cfsboot\\.digest=${v1.digest}`, 'm'))
    assert.match(entry, /^options .*console=ttyS0/m, 'kernel-args from the image’s own cfsboot.conf')
    const kdir = result.deployment.kernel.dir
    assert.ok(statSync(join(esp, kdir, 'vmlinuz')).size > 0)
    assert.ok(statSync(join(esp, kdir, 'initramfs.img')).size > 0)
    const listed = await listFat({path: disk, offset: MiB})
    assert.ok(listed.includes('/EFI/BOOT/BOOTX64.EFI'), listed.join(' '))
  })

  test('between boots: read the ESP, deploy an update, write it back (what the VM test does)', async () => {
    const {loop, parts} = await attach(disk, 2)
    const mnt = join(work, 'root-mnt2')
    const esp = join(work, 'esp-rw')
    mkdirSync(mnt, {recursive: true})
    const fat = {path: disk, offset: MiB}
    try {
      run('mount', [parts[1]!.node, mnt])
      try {
        await readFatToDir(fat, esp)
        // A host whose kernel cannot open the pre-sealed store (it reads the kernel object) only
        // changes the ESP; the VM test deploys on a disk made by install to-filesystem.
        if (hostOpensVerityFiles) {
          const d = await cli([
            'deploy',
            v2.image,
            '--objects',
            v2.objects,
            '--sysroot',
            mnt,
            '--boot-dir',
            esp,
            '--json',
          ])
          assert.equal(d.code, 0, d.stderr)
        }
        // An entry removed on the ESP copy must disappear from the FAT too.
        rmSync(join(esp, 'loader/entries', result.deployment.entry))
      } finally {
        run('umount', [mnt])
      }
    } finally {
      await detachLoop(loop)
    }
    await writeDirToFat(fat, esp)
    const back = join(work, 'esp-back')
    await readFatToDir(fat, back)
    assert.deepEqual(diffSnapshots(snapshot(esp), snapshot(back)), [])
    const again = await attach(disk, 2)
    try {
      run('fsck.vfat', ['-n', again.parts[0]!.node])
    } finally {
      await detachLoop(again.loop)
    }
  })
})

describe('install to-disk safety', {skip: SKIP}, () => {
  let disk: string
  let loop: string
  let parts: PartitionNode[]
  let hashBefore: string

  /** A 160 MiB disk image with a partition table and an ext4 filesystem: someone's data. */
  async function makeDataDisk(): Promise<void> {
    disk = join(work, 'data.img')
    writeFileSync(disk, '')
    run('truncate', ['-s', '160M', disk])
    ;({loop} = await attach(disk, 0))
    const dev = await describeBlockDevice(loop)
    await writePartitionTable(loop, sfdiskScript(planLayout(dev.size, 64 * MiB, 512)))
    parts = await refreshPartitions(dev, 2)
    await makeExt4(parts[1]!.node, 'precious')
    hashBefore = sha256(disk)
  }

  const viaLoopback = (file: string, size: string, objects: string, ...extra: string[]): Promise<Cli> =>
    cli([
      'install',
      'to-disk',
      '--via-loopback',
      file,
      '--size',
      size,
      '--image',
      v1.image,
      '--objects',
      objects,
      ...extra,
    ])
  const install = (target: string, ...extra: string[]): Promise<Cli> =>
    cli([
      'install',
      'to-disk',
      target,
      '--image',
      v1.image,
      '--objects',
      v1.objects,
      ...(extra.includes('--esp-size') ? [] : ['--esp-size', '64M']),
      ...extra,
    ])

  before(makeDataDisk)
  after(async () => {
    if (loop) await detachLoop(loop).catch(() => undefined)
  })

  test('a disk with partitions needs --wipe', async () => {
    const r = await install(loop, '--yes', '--json')
    assert.equal(r.code, 3, r.stderr)
    assert.equal(errorCode(r), 'EHASDATA')
    assert.equal(sha256(disk), hashBefore)
  })

  test('without --yes and without a terminal nothing is erased, after showing what would be', async () => {
    const r = await install(loop, '--wipe')
    assert.equal(r.code, 2, r.stderr)
    assert.match(r.stderr, /This erases everything on:/)
    assert.match(r.stderr, new RegExp(`${parts[1]!.node}\\s+\\d+.*name=cfsboot-root\\s+ext4 label=precious`))
    assert.match(
      r.stderr,
      /refusing to erase .* without --yes \(stdin is not a terminal\); nothing was written/,
    )
    assert.equal(sha256(disk), hashBefore)
  })

  test('a mounted partition protects the whole disk', async () => {
    const mnt = join(work, 'data-mnt')
    mkdirSync(mnt, {recursive: true})
    // Read-only: a read-write mount writes the superblock, and the hash must stay comparable.
    run('mount', ['-o', 'ro', parts[1]!.node, mnt])
    try {
      const r = await install(loop, '--wipe', '--yes', '--json')
      assert.equal(r.code, 3, r.stderr)
      assert.equal(errorCode(r), 'EMOUNTED')
    } finally {
      run('umount', [mnt])
    }
    assert.equal(sha256(disk), hashBefore)
  })

  test('a mounted loop device (filesystem on the whole device) is refused', async () => {
    const plain = join(work, 'plain.img')
    run('truncate', ['-s', '160M', plain])
    const {loop: l} = await attach(plain, 0)
    const mnt = join(work, 'plain-mnt')
    mkdirSync(mnt, {recursive: true})
    try {
      await makeExt4(l, 'whole')
      const h = sha256(plain)
      run('mount', ['-o', 'ro', l, mnt])
      try {
        const r = await install(l, '--wipe', '--yes', '--json')
        assert.equal(r.code, 3, r.stderr)
        assert.equal(errorCode(r), 'EMOUNTED')
      } finally {
        run('umount', [mnt])
      }
      assert.equal(sha256(plain), h)
      // Unmounted, the ext4 signature still needs --wipe.
      const r = await install(l, '--yes', '--json')
      assert.equal(r.code, 3)
      assert.equal(errorCode(r), 'EHASDATA')
      assert.equal(sha256(plain), h)
    } finally {
      await detachLoop(l)
    }
  })

  test('a partition is refused without --force', async () => {
    const r = await install(parts[0]!.node, '--wipe', '--yes')
    assert.equal(r.code, 3, r.stderr)
    assert.match(
      r.stderr,
      new RegExp(
        `${parts[0]!.node} is a partition of /dev/${loop.slice(5)}, not a whole disk \\(pass --force`,
      ),
    )
    assert.equal(sha256(disk), hashBefore)
  })

  test('a target smaller than the image, its objects, the ESP and the margin is refused', async () => {
    const small = join(work, 'small.img')
    run('truncate', ['-s', '200M', small])
    const {loop: l} = await attach(small, 0)
    try {
      const h = sha256(small)
      const r = await install(l, '--yes', '--esp-size', '256M')
      assert.equal(r.code, 3, r.stderr)
      assert.match(
        r.stderr,
        /is too small: 200 MiB, but the ESP \(256 MiB\), the image and its objects .* need at least/,
      )
      assert.equal(sha256(small), h)
    } finally {
      await detachLoop(l)
    }
  })

  test('the disk holding the running root filesystem is refused', async (t) => {
    const disks = [...(await rootDisks())]
    if (!disks.length || !existsSync(`/dev/${disks[0]}`))
      return t.skip('the root filesystem is on no block device here')
    const r = await install(`/dev/${disks[0]}`, '--wipe', '--yes', '--json')
    assert.equal(r.code, 3, r.stderr)
    assert.equal(errorCode(r), 'EROOTDISK')
  })

  test('something that is not a block device is refused, pointing to --via-loopback', async () => {
    const r = await install(v1.image, '--yes', '--json')
    assert.equal(r.code, 3)
    assert.equal(errorCode(r), 'ENOTBLK')
    assert.match(r.stderr, /--via-loopback/)
  })

  test('--via-loopback refuses a file that is in use and a size too small; bad objects write nothing', async () => {
    let r = await viaLoopback(disk, '160M', v1.objects, '--yes', '--json')
    assert.equal(r.code, 3)
    assert.equal(errorCode(r), 'EINUSE')
    assert.equal(sha256(disk), hashBefore)

    const fresh = join(work, 'never.img')
    r = await viaLoopback(fresh, '48M', v1.objects, '--json')
    assert.equal(r.code, 3)
    assert.equal(errorCode(r), 'ETOOSMALL')
    assert.equal(existsSync(fresh), false)

    r = await viaLoopback(fresh, '160M', v1.objects, '--esp-size', '16M', '--json')
    assert.equal(r.code, 3)
    assert.equal(errorCode(r), 'EINVALID')
    assert.equal(existsSync(fresh), false)

    const broken = join(work, 'broken-objects')
    run('cp', ['-a', v1.objects, broken])
    rmSync(join(broken, v1.objectPaths[0]!))
    r = await viaLoopback(fresh, '160M', broken, '--json')
    assert.equal(r.code, 6, r.stderr)
    assert.equal(errorCode(r), 'EDAMAGE')
    assert.equal(existsSync(fresh), false)
  })

  test('with --wipe --yes a disk with data is erased and installed; the result lists what was erased', async () => {
    const r = await install(loop, '--wipe', '--yes', '--json')
    assert.equal(r.code, 0, r.stderr)
    const res = parseJson<InstallResult>(r)
    assert.equal(schemaErrors('install', res), '')
    assert.equal(res.target.kind, 'block-device')
    assert.equal(res.target.device, loop)
    assert.deepEqual(
      res.erased?.partitions.map((p) => [p.number, p.name, p.filesystem, p.label]),
      [
        [1, 'cfsboot-esp', null, null],
        [2, 'cfsboot-root', 'ext4', 'precious'],
      ],
    )
    assert.match(r.stderr, /This erases everything on:/)
    assert.notEqual(sha256(disk), hashBefore)
    const again = await refreshPartitions(await describeBlockDevice(loop), 2)
    run('fsck.vfat', ['-n', again[0]!.node])
    run('e2fsck', ['-fn', again[1]!.node])
    assert.match(run('blkid', ['-p', '-o', 'export', again[1]!.node]), /LABEL=cfsboot-root/)
  })

  test('SIGTERM in the middle stops at the next step and cleans up: no mount, no loop device, no file', async () => {
    const file = join(work, 'interrupted.img')
    const child = spawn(
      process.execPath,
      [
        RUN_JS,
        'install',
        'to-disk',
        '--via-loopback',
        file,
        '--size',
        '160M',
        '--esp-size',
        '64M',
        '--image',
        v1.image,
        '--objects',
        v1.objects,
      ],
      {
        cwd: REPO,
        env: {...process.env, CFSBOOT_RUN_DIR: join(work, 'run')},
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let stderr = ''
    let sent = false
    const done = new Promise<number | null>((res) => child.on('close', res))
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString()
      if (!sent && stderr.includes('making ext4')) sent = child.kill('SIGTERM')
    })
    const code = await done
    assert.equal(code, 1, stderr)
    assert.match(stderr, /interrupted by SIGTERM; cleaned up/)
    assert.equal(existsSync(file), false)
    assert.equal((await loopBackingFiles()).has(file), false)
    assert.doesNotMatch(readFileSync('/proc/self/mountinfo', 'utf8'), /cfsboot-install-/)
  })

  test('an existing disk image file is replaced only with --yes', async () => {
    const file = join(work, 'old.img')
    writeFileSync(file, 'important bytes')
    const r = await viaLoopback(file, '160M', v1.objects, '--esp-size', '64M')
    assert.equal(r.code, 2, r.stderr)
    assert.equal(readFileSync(file, 'utf8'), 'important bytes')
  })
})

describe(
  'install to-filesystem',
  {skip: isRoot() ? false : 'needs root (like install on a real machine)'},
  () => {
    test('into a plain directory gives a valid sysroot with the boot files in DIR/boot', async (t) => {
      if (!existsSync(join(SYSTEMD_BOOT_DIR, 'systemd-bootx64.efi')))
        return t.skip('systemd-boot-efi is not installed')
      const dir = join(work, 'fs-target')
      mkdirSync(join(dir, 'lost+found'), {recursive: true})
      const r = await cli([
        'install',
        'to-filesystem',
        dir,
        '--image',
        v1.image,
        '--objects',
        v1.objects,
        '--json',
      ])
      assert.equal(r.code, 0, r.stderr)
      const res = parseJson<InstallResult>(r)
      assert.equal(schemaErrors('install', res), '')
      assert.equal(res.method, 'to-filesystem')
      assert.equal(res.bootDir, join(dir, 'boot'))
      const paths = sysrootPaths(dir)
      assert.deepEqual(await incomplete(paths, v1.digest), [])
      assert.ok(existsSync(join(dir, 'boot/EFI/BOOT/BOOTX64.EFI')))
      assert.ok(existsSync(join(dir, 'boot/loader/loader.conf')))
      assert.ok(existsSync(join(dir, 'boot/loader/entries', res.deployment.entry)))
      const st = parseJson<{deployments: {digest: string; staged: boolean}[]}>(
        await cli(['status', '--sysroot', dir, '--json']),
      )
      assert.equal(st.deployments[0]?.digest, v1.digest)
      assert.equal(st.deployments[0]?.staged, true)
      const f = await cli(['fsck', '--sysroot', dir, '--json'])
      assert.equal(f.code, 0, f.stdout + f.stderr)

      const again = await cli([
        'install',
        'to-filesystem',
        dir,
        '--image',
        v2.image,
        '--objects',
        v2.objects,
        '--json',
      ])
      assert.equal(again.code, 3)
      assert.equal(errorCode(again), 'EHASDATA')
    })

    test('a separate --boot-dir, no boot loader, and refusing a directory with data in it', async () => {
      const dir = join(work, 'fs-target2')
      const boot = join(work, 'fs-boot2')
      mkdirSync(dir)
      const r = await cli([
        'install',
        'to-filesystem',
        dir,
        '--boot-dir',
        boot,
        '--no-boot-loader',
        '--image',
        v2.image,
        '--objects',
        v2.objects,
        '--json',
      ])
      assert.equal(r.code, 0, r.stderr)
      const res = parseJson<InstallResult>(r)
      assert.equal(res.bootLoader, null)
      assert.equal(existsSync(join(boot, 'EFI')), false)
      assert.deepEqual(await incomplete(sysrootPaths(dir, boot), v2.digest), [])

      const busy = join(work, 'fs-busy')
      mkdirSync(join(busy, 'home'), {recursive: true})
      const b = await cli([
        'install',
        'to-filesystem',
        busy,
        '--image',
        v1.image,
        '--objects',
        v1.objects,
        '--json',
      ])
      assert.equal(b.code, 3)
      assert.equal(errorCode(b), 'EHASDATA')
      const root = await cli([
        'install',
        'to-filesystem',
        '/',
        '--image',
        v1.image,
        '--objects',
        v1.objects,
        '--json',
      ])
      assert.equal(root.code, 3)
      assert.equal(errorCode(root), 'EROOTDISK')
    })
  },
)
