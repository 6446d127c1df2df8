// How V8 compiles the hot code of a short metadata command. `build --from-dump` and `image dump`
// of a typical OS tree (30-60k entries) finish in a few hundred milliseconds, and about a third of
// their CPU time is V8's optimizing compiler running beside the main thread; the main thread
// waits on it for its fast code. Without inlining, each optimized function is smaller and is
// ready sooner; on a large input the code runs long enough that inlining pays for its compile
// time again. Measured on this project's 2-core machines, median of 5-7 alternating runs:
//
// | input                        | with inlining      | without            |
// |------------------------------|--------------------|--------------------|
// | dump build, 32k entries      | 680 ms, 1060 ms CPU | 600 ms, 860 ms CPU |
// | dump build, 100k entries     | 1490 ms            | 1420 ms            |
// | dump build, 1M entries       | 11.7-12.1 s        | 12.7-13.1 s        |
// | image dump, 32k entries      | 302 ms, 449 ms CPU | 286 ms, 380 ms CPU |
// | image dump, 100k entries     | 428 ms             | 446 ms             |
// | image dump, 1M entries       | 2.31 s             | 2.80 s             |
//
// The limits below sit between the sizes measured to gain and those measured to lose. The tree
// build is left as it is: its CPU goes to hashing and system calls, and the flag changed nothing
// there; `digest` lost 5 % with it (its loop wants its hashing calls inlined).
import {statSync} from 'node:fs'
import {setFlagsFromString} from 'node:v8'

/** `image dump` of an image up to this size (~70k entries) compiles without inlining. */
export const IMAGE_DUMP_QUICK_MAX = 16 << 20
/** `build --from-dump` of a dump up to this size (~350k entries) compiles without inlining. */
export const DUMP_BUILD_QUICK_MAX = 64 << 20

/**
 * Turns TurboFan's inlining off for the rest of the process when the file at `path` is at most
 * `quickMax` bytes, and says whether it did. Call it before the hot code first runs: what is
 * already optimized stays as it is. A path that cannot be stat'ed (stdin, a missing file: the
 * command reports that) changes nothing. Set at run time rather than on node's command line,
 * where any V8 flag makes Node compile its own built-in modules again (~14 ms on `--help`).
 */
export function compileQuicklyForSmall(path: string, quickMax: number): boolean {
  if (path === '-') return false
  let size: number
  try {
    size = statSync(path).size
  } catch {
    return false
  }
  if (size > quickMax) return false
  setFlagsFromString('--no-turbo-inlining')
  return true
}
