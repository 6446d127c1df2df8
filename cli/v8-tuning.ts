// How V8 runs the short metadata commands, set at run time (`v8.setFlagsFromString`) rather
// than on node's command line: any V8 flag there makes Node compile its own built-in modules
// again instead of using their embedded code cache (10-20 ms: ~14 ms on `--help`, 7-19 ms on a
// dump build). Two settings:
//
// Inlining. `build --from-dump` and `image dump` of a typical OS tree (30-60k entries) finish in
// a few hundred milliseconds, and about a third of their CPU time is V8's optimizing compiler
// running beside the main thread; the main thread waits on it for its fast code. Without
// inlining, each optimized function is smaller and is ready sooner; on a large input the code
// runs long enough that inlining pays for its compile time again. Measured on this project's
// 2-core machines, median of 5-7 alternating runs:
//
// | input                        | with inlining       | without            |
// |------------------------------|---------------------|--------------------|
// | dump build, 32k entries      | 680 ms, 1060 ms CPU | 600 ms, 860 ms CPU |
// | dump build, 100k entries     | 1490 ms             | 1420 ms            |
// | dump build, 1M entries       | 11.7-12.1 s         | 12.7-13.1 s        |
// | image dump, 32k entries      | 302 ms, 449 ms CPU  | 286 ms, 380 ms CPU |
// | image dump, 100k entries     | 428 ms              | 446 ms             |
// | image dump, 1M entries       | 2.31 s              | 2.80 s             |
//
// The limits below sit between the sizes measured to gain and those measured to lose. The tree
// build is left as it is: its CPU goes to hashing and system calls, and the flag changed nothing
// there; `digest` lost 5 % with it (its loop wants its hashing calls inlined).
//
// The young generation. A build makes a tree of objects that all live to its end, so a large
// nursery only holds garbage and copies survivors: V8's default grows each semi-space to 16 MiB,
// which cost a dump build of 32k entries 92 against 75 MiB at 1 MiB. A dump build keeps it at
// its first 1 MiB by not letting it grow. The tree build cannot: once a worker thread exists the
// run-time setting no longer holds (121 against 92 MiB measured), so bin/cfsboot gives it
// `--max-semi-space-size=1` on the command line instead.
import {statSync} from 'node:fs'
import {setFlagsFromString} from 'node:v8'

/** `image dump` of an image up to this size (~70k entries) compiles without inlining. */
const IMAGE_DUMP_QUICK_MAX = 16 << 20
/** `build --from-dump` of a dump up to this size (~350k entries) compiles without inlining. */
const DUMP_BUILD_QUICK_MAX = 64 << 20

/** Before `image dump` reads IMAGE (its early path and the command alike). */
export function tuneImageDump(image: string): void {
  compileQuicklyForSmall(image, IMAGE_DUMP_QUICK_MAX)
}

/**
 * Before `build --from-dump` parses SOURCE (its early path and the command alike): the young
 * generation stays at its first 1 MiB (see above), and a small dump compiles without inlining.
 */
export function tuneDumpBuild(source: string): void {
  setFlagsFromString('--semi-space-growth-factor=1')
  compileQuicklyForSmall(source, DUMP_BUILD_QUICK_MAX)
}

/**
 * Turns TurboFan's inlining off for the rest of the process when the file at `path` is at most
 * `quickMax` bytes, and says whether it did. Call it before the hot code first runs: what is
 * already optimized stays as it is. A path that cannot be stat'ed (stdin, a missing file: the
 * command reports that) changes nothing.
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
