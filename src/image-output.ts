// Where `cfsboot build` may write its image, checked before any work: a tree build scans and
// hashes its whole source before it writes, so an output it cannot write would otherwise be
// found only at the end (seconds to minutes of work later). The write itself (temporary name
// beside OUTPUT, fsync, rename) still reports what goes wrong after this check.

import {access, constants, stat} from 'node:fs/promises'
import {dirname, resolve} from 'node:path'

import {InvalidInputError} from './errors.js'

/** Refuses an OUTPUT whose directory is missing or not writable, or that is a directory. */
export async function checkImageOutput(output: string): Promise<void> {
  const dir = dirname(resolve(output))
  const where = await stat(dir).catch(() => null)
  if (!where) throw new InvalidInputError(`${output}: the directory ${dir} does not exist`)
  if (!where.isDirectory()) throw new InvalidInputError(`${output}: ${dir} is not a directory`)
  try {
    await access(dir, constants.W_OK)
  } catch (err) {
    const reason =
      (err as NodeJS.ErrnoException).code === 'EROFS' ? 'a read-only file system' : 'not writable'
    throw new InvalidInputError(`${output}: cannot write in ${dir} (${reason})`)
  }
  if ((await stat(output).catch(() => null))?.isDirectory())
    throw new InvalidInputError(`${output}: is a directory`)
}
