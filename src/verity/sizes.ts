// How much there is to hash, to decide whether worker threads are worth starting.
import {statSync} from 'node:fs'

/**
 * Below this many bytes in all, the main thread alone is as fast as starting workers, or faster:
 * a worker takes ~60 ms to start and its code starts cold, which the hashing it takes over pays
 * back only on a few hundred MB. `cfsboot digest` of one file, worker vs main thread alone
 * (median of 5-7 alternating runs, 2 cores): 20 MiB 143 vs 113 ms, 32 MiB 157 vs 140, 48 MiB
 * 191 vs 159, 64 MiB 194 vs 176, 96 MiB 225 vs 222, 128 MiB 264 vs 267; 256 MiB (in process)
 * 261-281 vs 355-362; 4,000 files of 124 MiB 385 vs 408. Alone it also takes a third less CPU
 * and ~11 MiB less memory.
 */
export const WORKERS_FROM_BYTES = 96 * 1024 * 1024

/** Files stat-ed at most to judge the size of a long list (~2 ms; a stat costs 3-4 µs). */
const SAMPLE_FILES = 512

/**
 * Whether the regular files in `paths` hold at least `bytes` bytes together (the others are
 * reported later). Stops stat-ing as soon as the answer is known, and judges a list of more than
 * SAMPLE_FILES by its first ones: stat-ing 3,000 small files to reach 96 MiB cost more than the
 * choice it informs could gain.
 */
export function holdsAtLeast(paths: string[], bytes: number): boolean {
  let total = 0
  const sample = Math.min(paths.length, SAMPLE_FILES)
  for (let i = 0; i < sample; i++) {
    const st = statSync(paths[i]!, {throwIfNoEntry: false})
    if (st?.isFile()) total += st.size
    if (total >= bytes) return true
  }
  return total * (paths.length / sample) >= bytes
}
