// The disk files of the VM test, made by `cfsboot install to-disk --via-loopback` (GPT: ESP,
// FAT32, partlabel cfsboot-esp; root, ext4 -b 4096 -O verity, partlabel cfsboot-root). The host
// kernel has no vfat driver: the ESP is read and written with mtools (src/system/fat.ts); the
// root partition is loop-mounted at its offset.
import {execFileSync} from 'node:child_process'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

export interface Partition {
  offset: number
  size: number
}

export interface TestDisk {
  path: string
  esp: Partition
  root: Partition
}

/** Loop-mounts the root partition at a fresh directory, runs `fn`, unmounts (also on failure). */
export async function withRoot<T>(disk: TestDisk, fn: (dir: string) => Promise<T>): Promise<T> {
  const mnt = mkdtempSync(join(tmpdir(), 'cfsboot-root-'))
  const opts = `loop,offset=${disk.root.offset},sizelimit=${disk.root.size}`
  execFileSync('mount', ['-o', opts, disk.path, mnt], {stdio: ['ignore', 'pipe', 'pipe']})
  try {
    return await fn(mnt)
  } finally {
    execFileSync('umount', [mnt], {stdio: ['ignore', 'pipe', 'pipe']})
    rmSync(mnt, {recursive: true, force: true})
  }
}

const MiB = 1024 * 1024

/** A disk file with the partitions `install to-disk` makes and an empty ext4 (-b 4096 -O verity) root. */
function makeBlankDisk(path: string): TestDisk {
  const espMiB = 512 // FAT32 with 4 KiB clusters needs over 65,525 of them: 256 MiB is too small
  const rootMiB = 384
  rmSync(path, {force: true})
  execFileSync('truncate', ['-s', `${espMiB + rootMiB + 2}M`, path])
  const espSectors = (espMiB * MiB) / 512
  const table = [
    'label: gpt',
    `start=2048, size=${espSectors}, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="cfsboot-esp"`,
    `start=${2048 + espSectors}, size=${(rootMiB * MiB) / 512}, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="cfsboot-root"`,
    '',
  ].join('\n')
  execFileSync('sfdisk', ['--quiet', '--no-reread', '--no-tell-kernel', path], {input: table})
  const disk: TestDisk = {
    path,
    esp: {offset: 2048 * 512, size: espMiB * MiB},
    root: {offset: (2048 + espSectors) * 512, size: rootMiB * MiB},
  }
  const dev = execFileSync(
    'losetup',
    ['--find', '--show', '--offset', String(disk.root.offset), '--sizelimit', String(disk.root.size), path],
    {encoding: 'utf8'},
  ).trim()
  try {
    execFileSync('mkfs.ext4', ['-q', '-b', '4096', '-O', 'verity', '-L', 'cfsboot-root', dev])
  } finally {
    execFileSync('losetup', ['--detach', dev])
  }
  return disk
}

/** Writes the boot directory `espDir` as the disk's FAT32 ESP. */
async function writeEsp(disk: TestDisk, espDir: string): Promise<void> {
  const {makeFat, writeDirToFat} = await import('../../src/system/fat.js')
  const esp = {path: disk.path, offset: disk.esp.offset}
  await makeFat(esp, disk.esp.size, 'CFSBOOT-ESP')
  await writeDirToFat(esp, espDir)
}

/**
 * The same disk as `install to-disk --via-loopback`, built step by step from the library (sfdisk
 * on the file, ext4 on a loop device at the root's offset, deploy, the seal-pending marker,
 * systemd-boot, the FAT written at the ESP's offset). Only for CFSBOOT_VM_TEST_INSTALL=manual:
 * it lets the boot path be tested on its own when the install command is the thing in doubt.
 */
export async function installByHand(opts: {
  path: string
  image: string
  objects: string
  config: string
  espDir: string
  deploy: (sysroot: string) => void
}): Promise<TestDisk> {
  const {initSysroot} = await import('../../src/deploy/deploy.js')
  const {sysrootPaths} = await import('../../src/deploy/paths.js')
  const {installBootLoader} = await import('../../src/install/esp.js')
  const disk = makeBlankDisk(opts.path)
  rmSync(opts.espDir, {recursive: true, force: true})
  await withRoot(disk, async (root) => {
    await initSysroot(sysrootPaths(root, opts.espDir))
    opts.deploy(root)
    execFileSync('touch', [join(root, 'composefs', 'seal-pending')])
  })
  await installBootLoader(opts.espDir)
  await writeEsp(disk, opts.espDir)
  return disk
}

/**
 * A disk whose root was filled by `install` (given the mounted, empty root and the boot
 * directory `espDir`), e.g. `cfsboot install to-filesystem ROOT --boot-dir ESPDIR`: the method
 * for a target someone else partitioned and mounted. Then espDir becomes the ESP.
 */
export async function installOnMountedRoot(opts: {
  path: string
  espDir: string
  install: (root: string) => Promise<void> | void
}): Promise<TestDisk> {
  const disk = makeBlankDisk(opts.path)
  rmSync(opts.espDir, {recursive: true, force: true})
  await withRoot(disk, async (root) => {
    await opts.install(root)
  })
  await writeEsp(disk, opts.espDir)
  return disk
}
