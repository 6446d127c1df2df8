// How much there is to hash, to decide whether worker threads are worth starting.
import {statSync} from 'node:fs'

/** Below this many bytes in all, the main thread alone is faster than starting workers. */
export const WORKERS_FROM_BYTES = 16 * 1024 * 1024

/** The sum of the sizes of the regular files in `paths` (the others are reported later). */
export function totalSize(paths: string[]): number {
  let total = 0
  for (const p of paths) {
    const st = statSync(p, {throwIfNoEntry: false})
    if (st?.isFile()) total += st.size
  }
  return total
}
