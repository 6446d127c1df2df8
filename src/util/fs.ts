// Durable file updates. Every state change in cfsboot follows one pattern: write a new file
// next to the target, fsync it, rename it over the target, fsync the directory. A crash at any
// point leaves either the old file or the new one, never a torn one.

import {randomBytes} from 'node:crypto'
import {constants} from 'node:fs'
import {access, type FileHandle, open, rename, rm} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

/** A temporary name beside `path`, recognisable (and safe to delete) after a crash. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${randomBytes(6).toString('hex')}`)
}

export async function fsyncDir(dir: string): Promise<void> {
  await fsyncPath(dir, constants.O_RDONLY | constants.O_DIRECTORY)
}

/** fsync(2) of an existing file (or, with O_DIRECTORY, a directory). */
export async function fsyncPath(path: string, flags: number = constants.O_RDONLY): Promise<void> {
  const fh = await open(path, flags)
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * Writes `data` to `path` atomically and durably; on any failure the temporary file is removed
 * and the old file, if any, is untouched. The bytes go out in one write(2) (more only if the
 * kernel writes less): FileHandle.writeFile would issue one per 512 KiB, each a round trip
 * through libuv's thread pool.
 */
export async function writeFileAtomic(path: string, data: Uint8Array, mode = 0o644): Promise<void> {
  await writeFileAtomicWith(
    path,
    async (fh) => {
      for (let off = 0; off < data.length;)
        off += (await fh.write(data, off, data.length - off, off)).bytesWritten
    },
    mode,
  )
}

/**
 * writeFileAtomic for content that `fill` writes into the new file itself (from its start, in
 * order), for content too large to hold in memory whole (an image written as it is made).
 */
export async function writeFileAtomicWith<T>(
  path: string,
  fill: (fh: FileHandle) => Promise<T>,
  mode = 0o644,
): Promise<T> {
  const tmp = tempPathFor(path)
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode)
  let result: T
  try {
    try {
      result = await fill(fh)
      await fh.sync()
    } finally {
      await fh.close()
    }
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, {force: true})
    throw err
  }
  await fsyncDir(dirname(path))
  return result
}

export async function exists(path: string): Promise<boolean> {
  try {
    await access(path)
    return true
  } catch {
    return false
  }
}
