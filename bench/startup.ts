// Start-up: `--help` of every command and topic, and `--version`, as whole processes (median
// and spread of N runs each) of bin/cfsboot, with the short cut of cli/fast-help.ts and through
// oclif (CFSBOOT_NO_FAST_HELP=1), against `node -e 0` (the floor), which is also timed with
// NODE_EXTRA_CA_CERTS set when the environment sets it (what bin/cfsboot spares every command).
// Prints markdown (also saved as $CFSBOOT_BENCH_CACHE/startup.md).
//   node dist/bench/startup.js [--runs N]
import {spawnSync} from 'node:child_process'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join, resolve, dirname} from 'node:path'
import {fileURLToPath} from 'node:url'

import {BENCH_CACHE, CFSBOOT, median, table} from './lib.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const i = process.argv.indexOf('--runs')
const RUNS = i >= 0 ? Number(process.argv[i + 1]) : 5

/** NODE_EXTRA_CA_CERTS as the environment sets it: the floor is timed with and without it. */
const EXTRA_CA = process.env.NODE_EXTRA_CA_CERTS
const WITHOUT_EXTRA_CA = {NODE_EXTRA_CA_CERTS: undefined}

function time(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): number {
  const all: NodeJS.ProcessEnv = {...process.env, ...env}
  delete all.OCLIF_COLUMNS
  delete all.FORCE_COLOR
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete all[k]
  const t = process.hrtime.bigint()
  const r = spawnSync(cmd, args, {stdio: ['ignore', 'pipe', 'inherit'], env: all})
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed`)
  return Number(process.hrtime.bigint() - t) / 1e6
}

function stats(xs: number[]): string {
  return `${median(xs).toFixed(0)} ms (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
}

const help = JSON.parse(readFileSync(join(REPO, 'dist', 'cli', 'help-cache.json'), 'utf8')) as {
  help: Record<string, string>
}
const cases: [string, string[]][] = [
  ['`--version`', ['--version']],
  ...Object.keys(help.help).map((k): [string, string[]] => [
    `\`${k ? k + ' ' : ''}--help\``,
    [...(k ? k.split(' ') : []), '--help'],
  ]),
]
const floor: number[] = []
const floorWithCa: number[] = []
const rows: string[][] = []
const fastMedians: number[] = []
for (const [name, argv] of cases) {
  const fast: number[] = []
  const slow: number[] = []
  for (let r = 0; r < RUNS; r++) {
    floor.push(time(process.execPath, ['-e', '0'], WITHOUT_EXTRA_CA))
    if (EXTRA_CA) floorWithCa.push(time(process.execPath, ['-e', '0']))
    fast.push(time(CFSBOOT, argv))
    slow.push(time(CFSBOOT, argv, {CFSBOOT_NO_FAST_HELP: '1'}))
  }
  fastMedians.push(median(fast))
  rows.push([name, stats(fast), stats(slow)])
}
const md = [
  '### Start-up (`bench/startup.ts`)',
  '',
  `\`node -e 0\`: ${stats(floor)}` +
    (EXTRA_CA ? `; with NODE_EXTRA_CA_CERTS=${EXTRA_CA} as set here: ${stats(floorWithCa)}` : '') +
    `. Slowest command's median with the short cut: ${Math.max(...fastMedians).toFixed(0)} ms.`,
  '',
  table(['command', 'cfsboot (short cut)', 'through oclif'], rows),
].join('\n')
console.log(md)
mkdirSync(BENCH_CACHE, {recursive: true})
writeFileSync(join(BENCH_CACHE, 'startup.md'), md + '\n')
