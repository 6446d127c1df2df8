// FAT filesystems (the EFI system partition) made, filled and read without mounting them.
//
// Mounting FAT needs the kernel's vfat driver, which build machines and containers often lack;
// mtools reads and writes a FAT image directly, and addresses a filesystem that starts inside a
// larger file or disk by byte offset (`-i FILE@@OFFSET`), so a whole-disk image needs no
// partition loop device. mkfs.vfat can write at an offset too (`--offset SECTORS`).

import {mkdir, readdir} from 'node:fs/promises'
import {join} from 'node:path'

import {CfsError, InvalidInputError} from '../errors.js'
import {needTool, run, RunResult} from './exec.js'

/** A FAT filesystem: a device or file, optionally starting `offset` bytes in. */
export interface FatTarget {
  path: string
  offset?: number
}

const SECTOR = 512

/**
 * FAT32 needs at least 65,525 clusters; mkfs.vfat's smallest cluster is one 512-byte sector, so
 * anything much below 33 MiB cannot be FAT32 (and UEFI firmware expects FAT32 on an ESP).
 */
export const MIN_FAT32_BYTES = 40 * 1024 * 1024

function imageSpec(t: FatTarget): string {
  const offset = t.offset ?? 0
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % SECTOR !== 0) {
    throw new InvalidInputError(`FAT offset ${offset} is not a multiple of ${SECTOR} bytes`)
  }
  return offset ? `${t.path}@@${offset}` : t.path
}

/** Runs an mtools command on the target; mtools' geometry checks make no sense for images. */
async function mtools(tool: string, args: string[], t: FatTarget, what: string): Promise<RunResult> {
  await needTool(tool)
  return run(tool, ['-i', imageSpec(t), ...args], {
    env: {MTOOLS_SKIP_CHECK: '1'},
    input: '',
    what,
  })
}

/**
 * Makes a FAT32 filesystem of `size` bytes at the target (its old content is lost).
 * `sectorSize` is the disk's logical sector size; mkfs.vfat counts the offset in those.
 */
export async function makeFat(t: FatTarget, size: number, label: string, sectorSize = SECTOR): Promise<void> {
  await needTool('mkfs.vfat')
  if (size < MIN_FAT32_BYTES) {
    throw new InvalidInputError(
      `a FAT32 ESP needs at least ${MIN_FAT32_BYTES / 1048576} MiB, not ${size} bytes`,
    )
  }
  imageSpec(t) // validates the offset
  const offset = t.offset ?? 0
  if (offset % sectorSize !== 0)
    throw new InvalidInputError(`FAT offset ${offset} is not a multiple of the sector size`)
  // -I: the target is a whole partitioned disk when an offset is given; that is intended.
  // FAT32 needs at least 65,525 clusters; mkfs.vfat's default 4 KiB clusters leave a 256 MiB ESP
  // just below that (mtools then refuses it), so pick the largest cluster that keeps a margin.
  let perCluster = 8
  while (perCluster > 1 && size / (perCluster * sectorSize) < 66_000) perCluster /= 2
  const args = ['-I', '-F', '32', '-S', String(sectorSize), '-s', String(perCluster), '-n', label]
  // "hidden sectors" = where the partition starts, as firmware that boots from it expects.
  if (offset) args.push('--offset', String(offset / sectorSize), '-h', String(offset / sectorSize))
  await run('mkfs.vfat', [...args, t.path, String(Math.floor(size / 1024))], {what: `mkfs.vfat ${t.path}`})
}

/** Entries of the FAT's root directory: names, directories with a trailing '/'. */
async function rootEntries(t: FatTarget): Promise<string[]> {
  const r = await mtools('mdir', ['-b', '::/'], t, 'mdir')
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('::/'))
    .map((l) => l.slice(3))
    .filter((n) => n && n !== './' && n !== '../')
}

/** Every path on the FAT, directories with a trailing '/' (for tests and messages). */
export async function listFat(t: FatTarget): Promise<string[]> {
  const r = await mtools('mdir', ['-/', '-b', '::/'], t, 'mdir')
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.startsWith('::/'))
    .map((l) => l.slice(2))
    .sort()
}

/**
 * Makes the FAT's content equal to `dir`: everything on it is deleted, then `dir`'s tree is
 * copied (directories recursively, modification times kept). Not atomic: a crash halfway
 * leaves a partial ESP, which is why provisioning writes it once, last, and the VM tests
 * rewrite it only between boots.
 */
export async function writeDirToFat(t: FatTarget, dir: string): Promise<void> {
  for (const name of await rootEntries(t)) {
    if (name.endsWith('/')) await mtools('mdeltree', [`::/${name.slice(0, -1)}`], t, 'mdeltree')
    else await mtools('mdel', [`::/${name}`], t, 'mdel')
  }
  const names = (await readdir(dir)).sort()
  if (names.length === 0) return
  await mtools('mcopy', ['-s', '-m', '-Q', '-D', 'o', ...names.map((n) => join(dir, n)), '::/'], t, 'mcopy')
}

/** Copies the whole FAT into `dir` (created if needed; files already there are overwritten). */
export async function readFatToDir(t: FatTarget, dir: string): Promise<void> {
  await mkdir(dir, {recursive: true})
  const names = await rootEntries(t)
  if (names.length === 0) return
  const sources = names.map((n) => `::/${n.replace(/\/$/, '')}`)
  const r = await mtools('mcopy', ['-s', '-n', '-m', '-Q', '-D', 'o', ...sources, dir + '/'], t, 'mcopy')
  if (r.exitCode !== 0) throw new CfsError('ETOOL', `mcopy from ${t.path} failed`)
}
