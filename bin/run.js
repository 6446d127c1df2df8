#!/usr/bin/env node
// Entry point: oclif finds the commands through package.json ("oclif.commands").
// Two short cuts come first, because loading oclif and its command index is most of what a
// short command costs: `--help`/`--version` answered from what the build saved
// (cli/fast-help.ts), and `digest`, which hashes before oclif loads when it can (loading
// oclif and all commands costs more than hashing half a GiB; see src/verity/early.ts).
// libuv's pool (fs calls, fsync) has 4 threads by default: too few for pull's 16 downloads, each
// ending in an fsync. Set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= '16'
const argv = process.argv.slice(2)
const last = argv[argv.length - 1]
const fast =
  (last === '--help' || argv[0] === '--version') &&
  (await import('../dist/cli/fast-help.js')).answerWithoutOclif(argv)
const early = !fast && argv[0] === 'digest' ? await import('../dist/src/verity/early.js') : undefined
const exitCode = early ? await early.digestBeforeOclif(argv.slice(1)) : fast ? 0 : undefined
if (exitCode === undefined) {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
} else {
  process.exitCode = exitCode
}
