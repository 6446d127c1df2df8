// The disk layout a factory install writes, and size arithmetic. Pure: no I/O.
//
//   GPT
//   ├── 1  cfsboot-esp   EFI system partition, FAT32 "CFSBOOT-ESP"   (--esp-size, default 256 MiB)
//   └── 2  cfsboot-root  Linux filesystem, ext4 "cfsboot-root"       (the rest of the disk)
//
// The root's GPT name is what the boot contract's default `cfsboot.root=PARTLABEL=cfsboot-root`
// finds (docs/boot.md), so an installed disk boots without any root= argument.

import {ESP_PARTLABEL, ESP_TYPE_GUID, LINUX_FS_TYPE_GUID, ROOT_PARTLABEL} from '../boot/contract.js'
import {InvalidInputError} from '../errors.js'

const MiB = 1024 * 1024
export const DEFAULT_ESP_SIZE = 256 * MiB
/** Partitions start on 1 MiB boundaries (what every partitioning tool does today). */
export const ALIGNMENT = MiB
/** The primary GPT plus alignment before partition 1, and the backup GPT at the end. */
export const GPT_HEAD = MiB
export const GPT_TAIL = MiB
/**
 * Room the root needs beyond the image and objects: ext4's journal and metadata, the
 * deployment directory, and some slack so the first boot can write /var.
 */
export const ROOT_RESERVE = 32 * MiB
/** ext4 metadata grows with the data (inode tables, extent trees): a 10 % allowance. */
export const ROOT_OVERHEAD_PERCENT = 10
/** Room on the ESP beyond the kernel, initramfs and boot loader (entries, FAT tables, slack). */
export const ESP_RESERVE = 8 * MiB
/** Largest --size for a disk image we create (a typo like 2T would fill the disk). */
export const MAX_IMAGE_FILE_SIZE = 16 * 1024 * 1024 * MiB

const UNITS: Record<string, number> = {
  '': 1,
  K: 1024,
  KIB: 1024,
  M: MiB,
  MIB: MiB,
  G: 1024 * MiB,
  GIB: 1024 * MiB,
  T: 1024 * 1024 * MiB,
  TIB: 1024 * 1024 * MiB,
}

/** "256M", "2G", "64MiB", "1048576" → bytes (binary units, like truncate(1)). */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined
  const n = m && unit !== undefined ? Number(m[1]) * unit : NaN
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new InvalidInputError(
      `${what} must be a size like 256M or 2G (K, M, G, T = powers of 1024), not "${text}"`,
    )
  }
  return n
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${v >= 100 ? v.toFixed(0) : v.toFixed(1)} ${units[i]}`
}

const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a
const alignDown = (n: number, a: number): number => Math.floor(n / a) * a

export interface Extent {
  /** Bytes from the start of the disk. */
  offset: number
  size: number
}

export interface Layout {
  sectorSize: number
  esp: Extent
  root: Extent
}

/** Bytes the root partition needs for an image and its objects. */
export function rootBytesNeeded(imageBytes: number, objectBytes: number): number {
  const data = imageBytes + objectBytes
  return alignUp(Math.ceil((data * (100 + ROOT_OVERHEAD_PERCENT)) / 100) + ROOT_RESERVE, ALIGNMENT)
}

/** Smallest disk that holds the layout: GPT, ESP, root. */
export function diskBytesNeeded(espBytes: number, rootBytes: number): number {
  return GPT_HEAD + alignUp(espBytes, ALIGNMENT) + rootBytes + GPT_TAIL
}

/** Where the partitions go on a disk of `diskBytes`. The caller has checked the disk is big enough. */
export function planLayout(diskBytes: number, espBytes: number, sectorSize: number): Layout {
  const espSize = alignUp(espBytes, ALIGNMENT)
  const rootOffset = GPT_HEAD + espSize
  const rootEnd = alignDown(diskBytes - GPT_TAIL, ALIGNMENT)
  if (rootEnd <= rootOffset)
    throw new InvalidInputError(`a ${formatBytes(diskBytes)} disk has no room for a root partition`)
  return {
    sectorSize,
    esp: {offset: GPT_HEAD, size: espSize},
    root: {offset: rootOffset, size: rootEnd - rootOffset},
  }
}

/** sfdisk's input for the layout: explicit sectors, so the ESP's offset is known exactly. */
export function sfdiskScript(l: Layout): string {
  const s = (bytes: number): number => bytes / l.sectorSize
  return [
    'label: gpt',
    `start=${s(l.esp.offset)}, size=${s(l.esp.size)}, type=${ESP_TYPE_GUID}, name="${ESP_PARTLABEL}"`,
    `start=${s(l.root.offset)}, size=${s(l.root.size)}, type=${LINUX_FS_TYPE_GUID}, name="${ROOT_PARTLABEL}"`,
    '',
  ].join('\n')
}
