// The result of `cfsboot install …`, printed by --json (schema: docs/schemas/install.json).

import {BootLoaderResult} from './esp.js'
import {SealResult} from '../deploy/seal.js'

/** A partition that `install to-disk` found on the disk and erased. */
export interface ErasedPartition {
  node: string
  number: number
  size: number
  type: string | null
  name: string | null
  filesystem: string | null
  label: string | null
}

export interface InstalledPartition {
  number: number
  node: string
  /** GPT partition name. */
  name: string
  /** GPT type GUID. */
  type: string
  /** Bytes from the start of the disk. */
  offset: number
  size: number
  filesystem: 'vfat' | 'ext4'
  label: string
}

export interface InstallResult {
  apiVersion: 'cfsboot/v1'
  kind: 'Install'
  method: 'to-disk' | 'to-filesystem'
  target: {
    kind: 'block-device' | 'loopback' | 'directory'
    /** The device, the disk image file, or the directory. */
    path: string
    /** Bytes (null for a directory). */
    size: number | null
    /** The block device written: the disk itself, or the loop device of --via-loopback. */
    device: string | null
  }
  /** What was on the target before (to-disk only; null when the target was new or empty). */
  erased: {size: number; model: string | null; partitions: ErasedPartition[]} | null
  /** The partitions made (to-disk only). */
  partitions: InstalledPartition[] | null
  /** to-filesystem: the physical root and the boot directory written. */
  sysroot: string | null
  bootDir: string | null
  /** fs-verity digest of the deployed image. */
  digest: string
  deployment: {
    generation: number
    entry: string
    /** bls: loader/entries/ENTRY; uki: a signed unified kernel image EFI/Linux/ENTRY. */
    entryKind: 'bls' | 'uki'
    kernel: {version: string; dir: string}
    objects: {count: number; bytes: number}
  }
  config: {source: 'file' | 'image' | 'defaults'; path: string | null; verity: 'require' | 'maybe' | 'off'}
  verity: SealResult
  bootLoader: BootLoaderResult | null
}
