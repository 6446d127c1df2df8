#!/usr/bin/env node
// Entry point: oclif finds the commands through package.json ("oclif.commands").
// Short cuts come first, because loading oclif and its command index is most of what a
// short command costs: `--help`/`--version` answered from what the build saved
// (cli/fast-help.ts); `digest`, which hashes before oclif loads when it can (loading
// oclif and all commands costs more than hashing half a GiB; see src/verity/early.ts); and the
// plain forms of `build` (a tree or a dump into an image file) and `image dump` (cli/early.ts),
// which upstream's C tools answer in about the time oclif takes to load.
// libuv's pool (fs calls, fsync) has 4 threads by default: too few for pull's 16 downloads, each
// ending in an fsync. Set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= '16'
const argv = process.argv.slice(2)
const last = argv[argv.length - 1]
const fast =
  (last === '--help' || argv[0] === '--version') &&
  (await import('../dist/cli/fast-help.js')).answerWithoutOclif(argv)
/** The exit code when a short cut answered the command itself, else undefined. */
async function beforeOclif() {
  if (fast) return 0
  if (argv[0] === 'digest')
    return (await import('../dist/src/verity/early.js')).digestBeforeOclif(argv.slice(1))
  if (argv[0] === 'build') return (await import('../dist/cli/early.js')).buildBeforeOclif(argv.slice(1))
  if (argv[0] === 'image' && argv[1] === 'dump')
    return (await import('../dist/cli/early.js')).dumpBeforeOclif(argv.slice(2))
  return undefined
}
const exitCode = await beforeOclif()
if (exitCode === undefined) {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
} else {
  process.exitCode = exitCode
}
