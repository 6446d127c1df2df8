// What `cfsboot digest` does: digest the files given on the command line, each file's outcome in
// order. The process has nothing else to do, so its main thread hashes too; when there is little
// to hash no worker is started at all (starting one costs more than hashing a few MiB); and work
// that bin/run.js started before the CLI had loaded (early.ts) is adopted, not redone.
import {takeEarlyDigests} from './early.js'
import {keepingProcessAlive} from './output.js'
import {DigestOutcome, DigestPool} from './pool.js'
import {holdsAtLeast, WORKERS_FROM_BYTES} from './sizes.js'

export interface DigestResult {
  files: {path: string; digest: string; size: number}[]
}

/** The digests of `paths`, in order; a file that cannot be read has an error instead. */
export async function digestPaths(paths: string[], opts: {threads?: number} = {}): Promise<DigestOutcome[]> {
  const early = opts.threads === undefined ? takeEarlyDigests(paths) : undefined
  if (early) {
    early.pool.helpOnMainThread()
    try {
      return await keepingProcessAlive(early.outcomes)
    } finally {
      await early.pool.close()
    }
  }
  const threads = opts.threads ?? (!holdsAtLeast(paths, WORKERS_FROM_BYTES) ? 0 : undefined)
  const pool = new DigestPool(threads === undefined ? {mainThread: true} : {threads, mainThread: true})
  try {
    return await pool.digestFilesSettled(paths)
  } finally {
    await pool.close()
  }
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
