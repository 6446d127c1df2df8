// Disks and partitions: what the kernel knows about a block device (from /sys), its partition
// table (sfdisk), filesystems (mkfs.ext4), loop devices for disk image files (losetup -P) and
// mounting the root partition. Used by `cfsboot install`; nothing here decides whether an
// operation is safe — src/install/preflight.ts does, before any of the writing functions runs.
//
// Why /sys rather than lsblk/udev: factory machines, containers and initramfs-like environments
// often run without udev, and then lsblk knows no labels or filesystem types. The kernel's own
// view (/sys/class/block, /proc/self/mountinfo) is always there; blkid and sfdisk read the disk.

import {constants} from 'node:fs'
import {access, open, readdir, readFile, realpath, stat, truncate} from 'node:fs/promises'
import {basename, join} from 'node:path'

import si from 'systeminformation'

import {CfsError} from '../errors.js'
import {needTool, run, which} from './exec.js'
import {readMountInfo, unescapeMount} from './mountinfo.js'

/** How long to wait for the kernel (or udev) to create partition device nodes. */
export const PARTITION_NODE_TIMEOUT_MS = 15_000

export interface PartitionNode {
  /** Kernel name, e.g. "sda1", "nvme0n1p1", "loop3p2". */
  name: string
  /** /dev/NAME */
  node: string
  number: number
  /** "major:minor" */
  devno: string
  /** Bytes. */
  size: number
}

export interface BlockDevice {
  /** The path given, resolved through symlinks (/dev/disk/by-id/… → /dev/sdb). */
  path: string
  name: string
  devno: string
  /** A partition of another disk (then `disk` names that disk). */
  isPartition: boolean
  disk: string
  size: number
  model: string | null
  /** Partitions the kernel currently knows of (empty for a partition). */
  partitions: PartitionNode[]
  /** Devices built on top of this one (device-mapper, RAID): a sign it is in use. */
  holders: string[]
  /** For a loop device: the file behind it. */
  backingFile: string | null
  /** Logical sector size: the unit of partition tables. */
  sectorSize: number
}

async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim()
  } catch {
    return null
  }
}

async function listDir(path: string): Promise<string[]> {
  try {
    return await readdir(path)
  } catch {
    return []
  }
}

/** glibc's major()/minor() split of a dev_t. */
function devnoOf(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)
  return `${major}:${minor}`
}

/** "major:minor" of a device node, or null when the path is not a block device. */
export async function blockDevno(path: string): Promise<string | null> {
  const st = await stat(path, {bigint: true})
  return st.isBlockDevice() ? devnoOf(st.rdev) : null
}

/** The /sys directory of a block device, by "major:minor". */
async function sysDirOf(devno: string): Promise<string> {
  return realpath(`/sys/dev/block/${devno}`)
}

/** Partitions of a whole disk, as the kernel sees them now. */
export async function kernelPartitions(diskName: string): Promise<PartitionNode[]> {
  const dir = `/sys/class/block/${diskName}`
  const out: PartitionNode[] = []
  for (const child of await listDir(dir)) {
    const number = await readText(join(dir, child, 'partition'))
    if (number === null) continue
    const devno = (await readText(join(dir, child, 'dev'))) ?? ''
    const sectors = Number((await readText(join(dir, child, 'size'))) ?? 0)
    out.push({name: child, node: `/dev/${child}`, number: Number(number), devno, size: sectors * 512})
  }
  return out.sort((a, b) => a.number - b.number)
}

/** Everything /sys says about a block device (the caller has checked it is one). */
export async function describeBlockDevice(pathArg: string): Promise<BlockDevice> {
  const path = await realpath(pathArg)
  const devno = await blockDevno(path)
  if (!devno) throw new CfsError('ENOTBLK', `${pathArg} is not a block device`)
  const sys = await sysDirOf(devno)
  const name = basename(sys)
  const isPartition = (await readText(join(sys, 'partition'))) !== null
  const diskSys = isPartition ? join(sys, '..') : sys
  const disk = basename(await realpath(diskSys))
  const size = Number((await readText(join(sys, 'size'))) ?? 0) * 512
  const model = (await readText(join(diskSys, 'device', 'model'))) || null
  return {
    path,
    name,
    devno,
    isPartition,
    disk,
    size,
    model,
    partitions: isPartition ? [] : await kernelPartitions(name),
    holders: await listDir(join(sys, 'holders')),
    backingFile: await readText(join(sys, 'loop', 'backing_file')),
    sectorSize: Number((await readText(join(diskSys, 'queue', 'logical_block_size'))) ?? 512) || 512,
  }
}

/**
 * The whole disks under a device: itself, its parent disk when it is a partition, and for
 * device-mapper or RAID devices the disks below them (followed through `slaves/`).
 */
export async function underlyingDisks(devno: string): Promise<Set<string>> {
  const out = new Set<string>()
  const visit = async (sys: string, depth: number): Promise<void> => {
    if (depth > 16) return
    const slaves = await listDir(join(sys, 'slaves'))
    if (slaves.length) {
      for (const s of slaves) await visit(await realpath(`/sys/class/block/${s}`), depth + 1)
      return
    }
    const isPartition = (await readText(join(sys, 'partition'))) !== null
    out.add(basename(isPartition ? await realpath(join(sys, '..')) : sys))
  }
  try {
    await visit(await sysDirOf(devno), 0)
  } catch {
    // not a block device (tmpfs, overlay, 9p…): no disk underneath
  }
  return out
}

/**
 * Mounted block devices as systeminformation sees them (lsblk's view, a third opinion beside
 * mountinfo and /proc/mounts), or null when it cannot list them (no lsblk).
 */
export async function mountedBlockDevices(): Promise<{name: string; mount: string}[] | null> {
  try {
    return (await si.blockDevices()).filter((b) => b.mount).map((b) => ({name: b.name, mount: b.mount}))
  } catch {
    return null
  }
}

/** Sources of /proc/mounts (another view of the same table; bind mounts show their device). */
export async function procMountSources(): Promise<string[]> {
  const text = (await readText('/proc/mounts')) ?? ''
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => unescapeMount(l.split(' ')[0] ?? ''))
}

/** Active swap devices and files (/proc/swaps). */
export async function swapSources(): Promise<string[]> {
  const text = (await readText('/proc/swaps')) ?? ''
  return text
    .split('\n')
    .slice(1)
    .filter(Boolean)
    .map((l) => unescapeMount(l.split(/\s+/)[0] ?? ''))
}

/** The whole disks holding the running root filesystem (`/`). */
export async function rootDisks(): Promise<Set<string>> {
  const root = (await readMountInfo()).filter((m) => m.mountPoint === '/').at(-1)
  if (!root) return new Set()
  const disks = await underlyingDisks(root.devno)
  // Some filesystems (btrfs) report an anonymous device number; the source names the device.
  if (disks.size === 0 && root.source.startsWith('/dev/')) {
    const devno = await blockDevno(root.source).catch(() => null)
    if (devno) for (const d of await underlyingDisks(devno)) disks.add(d)
  }
  return disks
}

/**
 * Whether the kernel lets us open the device exclusively. A mounted filesystem, an active
 * device-mapper or RAID member, or a swap area holds the device and makes this fail with EBUSY;
 * it is the kernel's own answer to "is anything using this disk".
 */
export async function openExclusive(path: string): Promise<'free' | 'busy' | 'denied'> {
  try {
    const fh = await open(path, constants.O_RDONLY | constants.O_EXCL)
    await fh.close()
    return 'free'
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EBUSY') return 'busy'
    if (code === 'EPERM' || code === 'EACCES') return 'denied'
    throw err
  }
}

/** Files attached to loop devices, resolved, with their devices. */
export async function loopBackingFiles(): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const name of await listDir('/sys/class/block')) {
    const file = await readText(`/sys/class/block/${name}/loop/backing_file`)
    if (file) out.set(file.replace(/ \(deleted\)$/, ''), `/dev/${name}`)
  }
  return out
}

// --- partition tables ---------------------------------------------------------------------------

export interface TablePartition {
  node: string
  /** In sectors. */
  start: number
  size: number
  type: string
  uuid: string | null
  name: string | null
}

export interface PartitionTable {
  label: 'gpt' | 'dos' | string
  id: string | null
  sectorSize: number
  partitions: TablePartition[]
}

/** The partition table on a device or disk image file, or null when there is none. */
export async function readPartitionTable(path: string): Promise<PartitionTable | null> {
  await needTool('sfdisk')
  const r = await run('sfdisk', ['--json', path], {reject: false, what: `sfdisk --json ${path}`})
  if (r.exitCode !== 0) {
    if (/does not contain a recognized partition table/i.test(r.stderr)) return null
    throw new CfsError('ETOOL', `sfdisk --json ${path} failed: ${r.stderr.split('\n')[0]}`)
  }
  let pt: Record<string, unknown>
  try {
    pt = (JSON.parse(r.stdout) as {partitiontable: Record<string, unknown>}).partitiontable
  } catch {
    throw new CfsError('ETOOL', `sfdisk --json ${path} printed no JSON`)
  }
  const parts = (pt['partitions'] as Record<string, unknown>[] | undefined) ?? []
  return {
    label: String(pt['label']),
    id: typeof pt['id'] === 'string' ? pt['id'] : null,
    sectorSize: typeof pt['sectorsize'] === 'number' ? pt['sectorsize'] : 512,
    partitions: parts.map((p) => ({
      node: String(p['node']),
      start: Number(p['start']),
      size: Number(p['size']),
      type: String(p['type']),
      uuid: typeof p['uuid'] === 'string' ? p['uuid'] : null,
      name: typeof p['name'] === 'string' ? p['name'] : null,
    })),
  }
}

/** Replaces the partition table with `script` (sfdisk's input format), wiping old signatures. */
export async function writePartitionTable(path: string, script: string): Promise<void> {
  await needTool('sfdisk')
  await run('sfdisk', ['--quiet', '--wipe', 'always', '--wipe-partitions', 'always', path], {
    input: script,
    what: `sfdisk ${path}`,
  })
}

/**
 * Makes the kernel's partition list match the disk's table and waits until the device nodes of
 * partitions 1..count exist. sfdisk asks the kernel to re-read the table, but that request can
 * fail silently (or udev can lag), so partx updates it explicitly.
 */
export async function refreshPartitions(disk: BlockDevice, count: number): Promise<PartitionNode[]> {
  await needTool('partx')
  await run('partx', ['--update', disk.path], {reject: false})
  if (await which('udevadm')) await run('udevadm', ['settle', '--timeout=10'], {reject: false})
  const deadline = Date.now() + PARTITION_NODE_TIMEOUT_MS
  for (;;) {
    const parts = (await kernelPartitions(disk.name)).filter((p) => p.number >= 1 && p.number <= count)
    const present = await Promise.all(
      parts.map((p) =>
        access(p.node).then(
          () => true,
          () => false,
        ),
      ),
    )
    if (parts.length === count && present.every(Boolean)) return parts
    if (Date.now() > deadline) {
      throw new CfsError(
        'EPARTITIONS',
        `the kernel did not create the partition devices of ${disk.path} (found ${parts.length} of ${count})`,
      )
    }
    if (parts.length < count) await run('partx', ['--add', disk.path], {reject: false})
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Filesystem or partition-table signatures on a device (blkid's low-level probe), e.g. {TYPE: "ext4"}. */
export async function probeSignature(path: string): Promise<Record<string, string> | null> {
  await needTool('blkid')
  const r = await run('blkid', ['--probe', '--output', 'export', path], {reject: false})
  // blkid exits 2 when it finds nothing.
  if (r.exitCode !== 0 || !r.stdout.trim()) return null
  const out: Record<string, string> = {}
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1)
  }
  delete out['DEVNAME']
  return Object.keys(out).length ? out : null
}

// --- filesystems, mounts, loop devices ----------------------------------------------------------

/** ext4 for the physical root: 4 KiB blocks so fs-verity's 4 KiB Merkle blocks work, `verity` on. */
export async function makeExt4(device: string, label: string): Promise<void> {
  await needTool('mkfs.ext4')
  await run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-O', 'verity', '-L', label, device], {
    what: `mkfs.ext4 ${device}`,
  })
}

export async function mountDevice(
  device: string,
  dir: string,
  opts: {readOnly?: boolean; type?: string} = {},
): Promise<void> {
  const args = ['-t', opts.type ?? 'ext4']
  if (opts.readOnly) args.push('-o', 'ro')
  await run('mount', [...args, device, dir], {what: `mount ${device}`})
}

/** Unmounts, syncing first; falls back to a lazy detach if something still holds it. */
export async function unmount(dir: string): Promise<void> {
  const r = await run('umount', [dir], {reject: false})
  if (r.exitCode !== 0) await run('umount', ['--lazy', dir], {what: `umount ${dir}`})
}

/** Flushes a block device's (or file's) cached writes to the disk. */
export async function syncDevice(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Creates (or empties) a sparse file of `size` bytes. */
export async function createSparseFile(path: string, size: number): Promise<void> {
  const fh = await open(path, constants.O_WRONLY | constants.O_CREAT, 0o644)
  await fh.close()
  await truncate(path, 0)
  await truncate(path, size)
}

/** Attaches a file to a free loop device with partition scanning; returns /dev/loopN. */
export async function attachLoop(file: string): Promise<string> {
  await needTool('losetup')
  const r = await run('losetup', ['--partscan', '--show', '--find', file], {what: `losetup ${file}`})
  const dev = r.stdout.trim()
  if (!/^\/dev\/loop\d+$/.test(dev))
    throw new CfsError('ETOOL', `losetup printed "${dev}", not a loop device`)
  return dev
}

export async function detachLoop(device: string): Promise<void> {
  await run('losetup', ['--detach', device], {what: `losetup --detach ${device}`})
}

export type VerityEnable = {enabled: true} | {enabled: false; reason: string}

/**
 * `fsverity enable` on one file. A kernel or filesystem without fs-verity is an answer, not an
 * error ({enabled: false, reason}); any other failure throws.
 */
export async function tryEnableVerity(path: string): Promise<VerityEnable> {
  await needTool('fsverity')
  const r = await run('fsverity', ['enable', path], {reject: false})
  if (r.exitCode === 0) return {enabled: true}
  const msg = r.stderr.split('\n').find((l) => l.trim()) ?? `exit code ${r.exitCode}`
  // EEXIST: already enabled (an object hardlinked from a source that has it).
  if (/file exists/i.test(msg)) return {enabled: true}
  if (/not supported|inappropriate ioctl|not implemented|ENOTTY|EOPNOTSUPP/i.test(msg))
    return {enabled: false, reason: msg.trim()}
  throw new CfsError('EVERITY', `fsverity enable ${path} failed: ${msg.trim()}`)
}

/**
 * `bootctl install` into a mounted ESP, without touching this machine's EFI variables (the
 * target is another machine's disk). Returns false when bootctl is not installed.
 */
export async function bootctlInstall(espPath: string): Promise<boolean> {
  if (!(await which('bootctl'))) return false
  await run('bootctl', ['install', '--no-variables', `--esp-path=${espPath}`], {what: 'bootctl install'})
  return true
}
