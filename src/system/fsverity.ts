// The kernel side of fs-verity (FS_IOC_MEASURE_VERITY, FS_IOC_ENABLE_VERITY), through the
// `fsverity` tool of fsverity-utils: Node cannot issue these ioctls itself. The user-space
// digest (the same number, computed by reading the file) lives in src/verity/.

import {UnsupportedError} from '../errors.js'
import {run, which} from './exec.js'

const MEASURE_RE = /^sha256:([0-9a-f]{64}) /

/**
 * The digest the kernel enforces for `path`, or null when the file has no fs-verity (or the
 * kernel or filesystem cannot do it, or the tool is missing: the caller then digests in user
 * space). Constant time: the kernel keeps the digest.
 */
/** `path` must be absolute: fsverity has no `--` and would take "-x" for an option. */
export async function measureVerity(path: string): Promise<Buffer | null> {
  try {
    const r = await run('fsverity', ['measure', path], {reject: false})
    const m = r.exitCode === 0 ? MEASURE_RE.exec(r.stdout) : null
    return m ? Buffer.from(m[1]!, 'hex') : null
  } catch {
    return null
  }
}

/**
 * Refuses up front when the `fsverity` tool is missing on a machine whose kernel can (or may)
 * enable fs-verity: there `deploy` must enable it on what it imports, and finding out halfway
 * would mean undoing the import. A device image needs the Debian package fsverity.
 */
export async function requireFsverityTool(why: string): Promise<void> {
  if (await which('fsverity')) return
  throw new UnsupportedError(
    `fsverity is not installed (Debian package fsverity; fsverity-utils elsewhere): ${why}`,
    {
      tool: 'fsverity',
    },
  )
}

/** Turns on fs-verity for a file (it becomes read-only for good). Throws a one-line error. */
export async function enableVerity(path: string): Promise<void> {
  await run('fsverity', ['enable', path], {what: `fsverity enable ${path}`})
}
