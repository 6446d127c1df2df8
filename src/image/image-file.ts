// Reading an image file into memory, refusing what cannot be an image before reading it: the
// first step of every command that reads one (load.ts for the tree, dump.ts for \`image dump\`).

import {readFile, stat} from 'node:fs/promises'

import {InvalidInputError} from '../errors.js'

/** Largest image file we load (a composefs image holds only metadata: 1 GiB is millions of files). */
export const MAX_IMAGE_BYTES = 1 << 30

const NOT_AN_IMAGE_FILE = new Set(['ENOENT', 'ENOTDIR', 'EISDIR', 'ELOOP'])

/** Reads an image file, refusing what cannot be an image before reading it. */
export async function loadImageFile(path: string): Promise<Buffer> {
  try {
    const st = await stat(path)
    if (!st.isFile()) throw new InvalidInputError(`image: ${path} is not a regular file`)
    if (st.size > MAX_IMAGE_BYTES) {
      throw new InvalidInputError(
        `image: ${path} is ${st.size} bytes, over the ${MAX_IMAGE_BYTES}-byte limit`,
      )
    }
    return await readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code && NOT_AN_IMAGE_FILE.has(code))
      throw new InvalidInputError(`image: cannot read ${path} (${code})`)
    throw err
  }
}
