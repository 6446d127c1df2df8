// Safety checks before `cfsboot install` writes anything. Each is a named function that either
// returns or throws one line; they run in the order of `preflightDisk`, before the user is
// shown what will be erased and long before the first write. Only two can be overridden:
// a partition as the target (--force) and existing data on the disk (--wipe). A mounted disk,
// a disk in use and the disk the running system lives on are never overridable.

import {lstat, readdir, realpath, stat} from 'node:fs/promises'
import {resolve} from 'node:path'

import {COMPOSEFS_DIR} from '../boot/contract.js'
import {CfsError, InvalidInputError, TargetRefusal} from '../errors.js'
import {
  BlockDevice,
  blockDevno,
  describeBlockDevice,
  loopBackingFiles,
  mountedBlockDevices,
  openExclusive,
  PartitionTable,
  probeSignature,
  procMountSources,
  readPartitionTable,
  rootDisks,
  swapSources,
} from '../system/disk.js'
import {readMountInfo} from '../system/mountinfo.js'
import {MIN_FAT32_BYTES} from '../system/fat.js'
import {ESP_RESERVE, formatBytes, MAX_IMAGE_FILE_SIZE} from './partition.js'

/** A refused target: exit code 3 like any other bad input, with its own code for scripts. */
export class UnsafeTargetError extends CfsError {
  constructor(code: TargetRefusal, message: string) {
    super(code, message)
    this.name = 'UnsafeTargetError'
  }
}

export async function checkIsBlockDevice(path: string): Promise<void> {
  const st = await stat(path).catch(() => null)
  if (!st) throw new InvalidInputError(`${path} does not exist`)
  if (!st.isBlockDevice()) {
    throw new UnsafeTargetError(
      'ENOTBLK',
      `${path} is not a block device (for a disk image file use --via-loopback FILE --size SIZE)`,
    )
  }
}

export function checkWholeDisk(dev: BlockDevice, force: boolean): void {
  if (dev.isPartition && !force) {
    throw new UnsafeTargetError(
      'EPARTITION',
      `${dev.path} is a partition of /dev/${dev.disk}, not a whole disk (pass --force to partition inside it)`,
    )
  }
}

export async function checkNotRunningRootDisk(dev: BlockDevice): Promise<void> {
  const disks = await rootDisks()
  if (disks.has(dev.disk) || disks.has(dev.name)) {
    throw new UnsafeTargetError(
      'EROOTDISK',
      `${dev.path} holds the running system's root filesystem (/): refusing to erase it`,
    )
  }
}

/** Device names and numbers that count as "this device": itself and its partitions. */
function family(dev: BlockDevice): {names: Set<string>; devnos: Set<string>} {
  return {
    names: new Set([dev.name, ...dev.partitions.map((p) => p.name)]),
    devnos: new Set([dev.devno, ...dev.partitions.map((p) => p.devno)]),
  }
}

/**
 * Mounted (or swapped on) itself or through a partition. Three independent views: the
 * superblock device numbers of /proc/self/mountinfo, the mount sources of /proc/mounts and
 * /proc/swaps resolved to device numbers, and systeminformation's view of block devices.
 */
export async function checkNotMounted(dev: BlockDevice): Promise<void> {
  const {names, devnos} = family(dev)
  const refuse = (what: string): never => {
    throw new UnsafeTargetError('EMOUNTED', `${dev.path} is in use: ${what}; unmount it first`)
  }
  for (const m of await readMountInfo()) {
    if (devnos.has(m.devno)) refuse(`${m.source} is mounted at ${m.mountPoint}`)
  }
  const sources = [...(await procMountSources()), ...(await swapSources()).map((s) => `swap:${s}`)]
  for (const src of sources) {
    const path = src.replace(/^swap:/, '')
    if (!path.startsWith('/dev/')) continue
    const devno = await blockDevno(path).catch(() => null)
    if (devno && devnos.has(devno))
      refuse(src.startsWith('swap:') ? `${path} is active swap` : `${path} is mounted`)
  }
  // null: systeminformation could not list devices (no lsblk): the two kernel views above decide
  for (const b of (await mountedBlockDevices()) ?? []) {
    if (names.has(b.name)) refuse(`/dev/${b.name} is mounted at ${b.mount}`)
  }
}

/** Held by device-mapper, RAID or anything else that claimed it, even if nothing is mounted. */
export async function checkNotInUse(dev: BlockDevice): Promise<void> {
  const held = [
    ...dev.holders,
    ...(
      await Promise.all(dev.partitions.map(async (p) => (await describeBlockDevice(p.node)).holders))
    ).flat(),
  ]
  if (held.length) {
    throw new UnsafeTargetError(
      'EINUSE',
      `${dev.path} is in use by ${held.join(', ')} (device-mapper, LVM, RAID or encryption)`,
    )
  }
  for (const path of [dev.path, ...dev.partitions.map((p) => p.node)]) {
    if ((await openExclusive(path)) === 'busy') {
      throw new UnsafeTargetError(
        'EINUSE',
        `${path} is in use: the kernel refuses exclusive access (mounted, swap or claimed)`,
      )
    }
  }
}

export function checkLargeEnough(what: string, size: number, needed: number, detail: string): void {
  if (size < needed) {
    throw new UnsafeTargetError(
      'ETOOSMALL',
      `${what} is too small: ${formatBytes(size)}, but ${detail} need at least ${formatBytes(needed)}`,
    )
  }
}

export function checkEspFits(espSize: number, kernelBytes: number, bootLoaderBytes: number): void {
  if (espSize < MIN_FAT32_BYTES) {
    throw new InvalidInputError(
      `--esp-size ${formatBytes(espSize)} is too small for FAT32 (at least ${formatBytes(MIN_FAT32_BYTES)})`,
    )
  }
  const needed = kernelBytes + bootLoaderBytes * 2 + ESP_RESERVE
  if (espSize < needed) {
    throw new InvalidInputError(
      `--esp-size ${formatBytes(espSize)} cannot hold the kernel, initramfs and boot loader (${formatBytes(needed)})`,
    )
  }
}

/** A partition table or a filesystem on the disk is data; erasing it needs --wipe. */
export function checkNoData(
  dev: BlockDevice,
  table: PartitionTable | null,
  signature: Record<string, string> | null,
  wipe: boolean,
): void {
  if (wipe) return
  if (table && table.partitions.length) {
    throw new UnsafeTargetError(
      'EHASDATA',
      `${dev.path} has ${table.partitions.length} partition(s) (${table.label}); pass --wipe to erase them`,
    )
  }
  if (signature) {
    const what = signature['TYPE'] ?? signature['PTTYPE'] ?? 'data'
    throw new UnsafeTargetError(
      'EHASDATA',
      `${dev.path} holds ${what === 'data' ? 'data' : `a ${what} signature`}; pass --wipe to erase it`,
    )
  }
}

export interface DiskFacts {
  dev: BlockDevice
  table: PartitionTable | null
  signature: Record<string, string> | null
  /** Filesystem signatures of the current partitions, by node. */
  partitionSignatures: Map<string, Record<string, string> | null>
}

/** All checks for a block device, in order; returns what was learned for the erase summary. */
export async function preflightDisk(
  path: string,
  opts: {wipe: boolean; force: boolean; needed: number; neededDetail: string},
): Promise<DiskFacts> {
  await checkIsBlockDevice(path)
  const dev = await describeBlockDevice(path)
  checkWholeDisk(dev, opts.force)
  await checkNotRunningRootDisk(dev)
  await checkNotMounted(dev)
  await checkNotInUse(dev)
  checkLargeEnough(dev.path, dev.size, opts.needed, opts.neededDetail)
  const table = await readPartitionTable(dev.path)
  const signature = await probeSignature(dev.path)
  checkNoData(dev, table, signature, opts.wipe)
  const partitionSignatures = new Map<string, Record<string, string> | null>()
  for (const p of dev.partitions)
    partitionSignatures.set(p.node, await probeSignature(p.node).catch(() => null))
  return {dev, table, signature, partitionSignatures}
}

export interface ImageFileFacts {
  path: string
  exists: boolean
  /** Current size (0 when new). */
  size: number
  table: PartitionTable | null
}

/**
 * --via-loopback FILE: a regular file (or a new one), not a device, not mounted or attached
 * to a loop device (someone is using it), and --size within bounds.
 */
export async function checkLoopbackFile(
  fileArg: string,
  size: number,
  needed: number,
  neededDetail: string,
): Promise<ImageFileFacts> {
  const file = resolve(fileArg)
  const st = await lstat(file).catch(() => null)
  if (st?.isSymbolicLink())
    throw new InvalidInputError(`--via-loopback ${file} is a symbolic link; give the file itself`)
  if (st?.isBlockDevice()) {
    throw new UnsafeTargetError(
      'EBLOCKDEV',
      `${file} is a block device; give it as DEVICE, not --via-loopback`,
    )
  }
  if (st && !st.isFile())
    throw new InvalidInputError(`--via-loopback ${file} exists and is not a regular file`)
  const dirSt = await stat(resolve(file, '..')).catch(() => null)
  if (!dirSt?.isDirectory())
    throw new InvalidInputError(`--via-loopback ${file}: its directory does not exist`)
  if (st) {
    const real = await realpath(file)
    const loop = (await loopBackingFiles()).get(real)
    if (loop) {
      throw new UnsafeTargetError(
        'EINUSE',
        `${file} is attached to ${loop}; detach it first (losetup -d ${loop})`,
      )
    }
    for (const m of await readMountInfo()) {
      if (m.mountPoint === real || m.source === real) {
        throw new UnsafeTargetError('EMOUNTED', `${file} is mounted at ${m.mountPoint}; unmount it first`)
      }
    }
  }
  if (size % 512 !== 0) throw new InvalidInputError(`--size must be a multiple of 512 bytes`)
  if (size > MAX_IMAGE_FILE_SIZE) {
    throw new InvalidInputError(
      `--size ${formatBytes(size)} is larger than the limit of ${formatBytes(MAX_IMAGE_FILE_SIZE)}`,
    )
  }
  checkLargeEnough('--size', size, needed, neededDetail)
  if (!st) return {path: file, exists: false, size: 0, table: null}
  return {
    path: file,
    exists: true,
    size: st.size,
    table: st.size ? await readPartitionTable(file).catch(() => null) : null,
  }
}

/** Names a directory may hold and still count as an empty target for to-filesystem. */
export const EMPTY_TARGET_ALLOWED = new Set(['lost+found', 'boot', 'efi'])

/** to-filesystem DIR: an existing directory, not the running root, with nothing of value in it. */
export async function checkTargetDirectory(dirArg: string): Promise<string> {
  const dir = resolve(dirArg)
  const st = await stat(dir).catch(() => null)
  if (!st?.isDirectory()) throw new InvalidInputError(`${dir} is not a directory`)
  const root = await stat('/')
  if (st.dev === root.dev && st.ino === root.ino) {
    throw new UnsafeTargetError(
      'EROOTDISK',
      `${dir} is the running system's root directory: refusing to install into it`,
    )
  }
  const names = await readdir(dir)
  if (names.includes(COMPOSEFS_DIR)) {
    throw new UnsafeTargetError(
      'EHASDATA',
      `${dir} already holds a cfsboot system (composefs/); use cfsboot deploy to add an image`,
    )
  }
  const other = names.filter((n) => !EMPTY_TARGET_ALLOWED.has(n))
  if (other.length) {
    throw new UnsafeTargetError(
      'EHASDATA',
      `${dir} is not empty (${other.slice(0, 3).join(', ')}${other.length > 3 ? ', …' : ''}); install needs an empty filesystem`,
    )
  }
  return dir
}
