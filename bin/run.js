#!/usr/bin/env node
// Entry point: oclif finds the commands through package.json ("oclif.commands").
// `digest` is answered before oclif loads when it can be: loading oclif and all commands costs
// more than hashing half a GiB (see src/verity/early.ts). Every other command goes to oclif.
// libuv's pool (fs calls, fsync) has 4 threads by default: too few for pull's 16 downloads, each
// ending in an fsync. Set before the pool's first use.
process.env.UV_THREADPOOL_SIZE ??= '16'
const early = process.argv[2] === 'digest' ? await import('../dist/src/verity/early.js') : undefined
const exitCode = early ? await early.digestBeforeOclif(process.argv.slice(3)) : undefined
if (exitCode === undefined) {
  const {execute} = await import('@oclif/core')
  await execute({dir: import.meta.url})
} else {
  process.exitCode = exitCode
}
