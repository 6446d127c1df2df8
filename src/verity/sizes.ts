// How much there is to hash, to decide whether worker threads are worth starting.
import {statSync} from 'node:fs'

/** Below this many bytes in all, the main thread alone is faster than starting workers. */
export const WORKERS_FROM_BYTES = 16 * 1024 * 1024

/**
 * Whether the regular files in `paths` hold at least `bytes` bytes together (the others are
 * reported later). Stops stat-ing as soon as the answer is known.
 */
export function holdsAtLeast(paths: string[], bytes: number): boolean {
  let total = 0
  for (const p of paths) {
    const st = statSync(p, {throwIfNoEntry: false})
    if (st?.isFile()) total += st.size
    if (total >= bytes) return true
  }
  return false
}
