// What `cfsboot digest` does: digest the files given on the command line, each file's outcome in
// order. The process has nothing else to do, so its main thread hashes too; and when there is
// little to hash, no worker is started at all (starting one costs more than hashing a few MiB).
import {statSync} from 'node:fs'

import {DigestOutcome, DigestPool} from './pool.js'

/** Below this many bytes in all, the main thread alone is faster than starting workers. */
export const WORKERS_FROM_BYTES = 16 * 1024 * 1024

export interface DigestResult {
  files: {path: string; digest: string; size: number}[]
}

/** The digests of `paths`, in order; a file that cannot be read has an error instead. */
export async function digestPaths(paths: string[], opts: {threads?: number} = {}): Promise<DigestOutcome[]> {
  const threads = opts.threads ?? (totalSize(paths) < WORKERS_FROM_BYTES ? 0 : undefined)
  const pool = new DigestPool(threads === undefined ? {mainThread: true} : {threads, mainThread: true})
  try {
    return await pool.digestFilesSettled(paths)
  } finally {
    await pool.close()
  }
}

/** The sum of the sizes of the regular files in `paths` (the others are the pool's to report). */
function totalSize(paths: string[]): number {
  let total = 0
  for (const p of paths) {
    const st = statSync(p, {throwIfNoEntry: false})
    if (st?.isFile()) total += st.size
  }
  return total
}

const READ_ERRORS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'is a directory',
  ENOTDIR: 'a path component is not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENOTREG: 'not a regular file',
  EIO: 'input/output error',
}

/** A short reason for a file that could not be digested (the path is said by the caller). */
export function describeReadError(err: NodeJS.ErrnoException): string {
  return (err.code && READ_ERRORS[err.code]) || err.message
}
