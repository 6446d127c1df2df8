// One verified, resumable download: an entry of the signed index into a file of its own.
//
// The part file grows only with bytes the server sent for this entry; a restart (kill -9, a cut
// connection) asks for the rest with Range and hashes the part it already has first, so no byte
// is fetched twice. The fs-verity digest is computed while the bytes arrive; a part whose digest
// differs from the index is deleted and the pull fails: wrong bytes never reach the store.

import {createReadStream} from 'node:fs'
import {open, rm, stat, truncate} from 'node:fs/promises'

import {DigestMismatchError} from '../errors.js'
import {FsVerityHasher} from '../verity/merkle.js'
import {describeFailure, discard, HttpStats, RemoteError} from './http.js'
import {ReleaseObject} from './index.js'
import {ReleaseSource} from './source-types.js'

export interface Fetched {
  /** Bytes received for this entry in this run. */
  bytes: number
  /** Bytes already in the part file from an interrupted run. */
  resumed: number
}

async function partSize(path: string): Promise<number> {
  return (await stat(path).catch(() => null))?.size ?? 0
}

async function hashExisting(path: string, h: FsVerityHasher): Promise<void> {
  for await (const c of createReadStream(path, {highWaterMark: 1 << 20})) h.update(c as Buffer)
}

/** Content-Range of a 206 must start where we asked. */
function rangeStart(header: string | undefined): number | null {
  const m = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header ?? '')
  return m ? Number(m[1]) : null
}

export async function fetchVerified(
  source: ReleaseSource,
  entry: ReleaseObject,
  kind: 'image' | 'object',
  part: string,
  stats: HttpStats,
  onBytes?: (n: number) => void,
): Promise<Fetched> {
  let offset = await partSize(part)
  if (offset > entry.size) {
    await truncate(part, 0)
    offset = 0
  }
  const resumed = offset
  let h = new FsVerityHasher()
  if (offset > 0) await hashExisting(part, h)
  let bytes = 0
  if (offset < entry.size) {
    const res = await source.open(entry, kind, offset)
    if (offset > 0 && res.status === 200) {
      // The server ignored Range: start over from its first byte.
      offset = 0
      h = new FsVerityHasher()
    } else if (res.status === 206 && rangeStart(res.headers['content-range']) !== offset) {
      await discard(res)
      throw new RemoteError(`${res.url}: the server answered a range request with the wrong range`)
    }
    const fh = await open(part, offset === 0 ? 'w' : 'a', 0o644)
    let have = offset
    try {
      for await (const chunk of res.body) {
        const c = chunk as Buffer
        if (have + c.length > entry.size) {
          res.body.destroy()
          throw new RemoteError(
            `${res.url}: the server sent more than the ${entry.size} bytes the index lists`,
          )
        }
        h.update(c)
        await fh.write(c)
        have += c.length
        bytes += c.length
        stats.bytes += c.length
        onBytes?.(c.length)
      }
      // Not fsynced here: the caller makes a whole batch durable at once before anything of it
      // gets a name (ObjectStore.adoptVerifiedBatch). A part a crash cut short or emptied only
      // fails its digest on the next run and is fetched again.
    } catch (err) {
      throw describeFailure(res.url, err)
    } finally {
      await fh.close()
    }
    if (have !== entry.size)
      throw new RemoteError(
        `${res.url}: the body ended after ${have} of ${entry.size} bytes (kept for resuming)`,
      )
  }
  const digest = h.digest().toString('hex')
  if (digest !== entry.digest) {
    await rm(part, {force: true})
    throw new DigestMismatchError(
      `${kind} ${entry.digest.slice(0, 16)}… from ${source.name}: the server sent bytes with fs-verity digest ${digest.slice(0, 16)}…; nothing of it was kept`,
    )
  }
  return {bytes, resumed}
}
