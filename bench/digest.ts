// fs-verity digest of a 1 GiB file, warm cache: fsverity-utils' `fsverity digest` against
// `cfsboot digest` (a whole process, as a user runs it) and the in-process engine, runs
// alternating, median of N. Prints a markdown table. Run alone: `node dist/bench/digest.js`
// (options: --runs N, --size BYTES, --files N, --no-wait). A second table: many small files.
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {closeSync, existsSync, mkdirSync, readFileSync, readSync, statSync, writeFileSync} from 'node:fs'
import {availableParallelism} from 'node:os'
import {join} from 'node:path'

import {BlockBuffer, openRegular} from '../src/verity/file-hash.js'
import {FsVerityHasher} from '../src/verity/merkle.js'
import {DigestPool} from '../src/verity/pool.js'
import {
  BENCH_CACHE,
  CFSBOOT,
  median,
  randomFile,
  table,
  timeCommand,
  timeMs,
  waitForQuiet,
  warmCache,
} from './lib.js'

function option(name: string, fallback: number): number {
  const i = process.argv.indexOf(name)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}

const runs = option('--runs', 5)
const size = option('--size', 1 << 30)
const wait = !process.argv.includes('--no-wait')
const SMALL_FILES = option('--files', 4000)

/** The digest on one thread: read 512 KiB at a time, FsVerityHasher. The per-core baseline. */
function singleThread(path: string): Buffer {
  const {fd} = openRegular(path)
  try {
    const bb = new BlockBuffer()
    const h = new FsVerityHasher()
    for (let pos = 0; ;) {
      const n = readSync(fd, bb.buf, 0, bb.buf.length, pos)
      if (n === 0) break
      h.update(n === bb.buf.length ? bb.buf : bb.buf.subarray(0, n))
      pos += n
    }
    return h.digest()
  } finally {
    closeSync(fd)
  }
}

async function inPool(path: string, opts: {threads?: number; mainThread?: boolean}): Promise<Buffer> {
  const pool = new DigestPool(opts)
  try {
    return await pool.digestFile(path)
  } finally {
    await pool.close()
  }
}

/** `count` files of random sizes up to 64 KiB (like a root filesystem's), made once. */
function smallFiles(count: number): string[] {
  const dir = join(BENCH_CACHE, `small-${count}`)
  mkdirSync(dir, {recursive: true})
  let seed = 12345
  const paths: string[] = []
  for (let i = 0; i < count; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0
    const path = join(dir, `f${i}`)
    const size = seed % 65536
    if (!existsSync(path) || statSync(path).size !== size) writeFileSync(path, randomBytes(size))
    paths.push(path)
  }
  return paths
}

interface Case {
  name: string
  run: () => Promise<unknown>
}

async function main(): Promise<void> {
  const hasFsverity = spawnSync('sh', ['-c', 'command -v fsverity']).status === 0
  const file = randomFile(size === 1 << 30 ? 'g1' : `random-${size}`, size)
  warmCache(file)
  const cores = availableParallelism()
  const cases: Case[] = [
    ...(hasFsverity
      ? [
          {
            name: '`fsverity digest` (fsverity-utils, C, 1 thread)',
            run: async () => timeCommand('fsverity', ['digest', file]),
          },
        ]
      : []),
    {
      name: '`cfsboot digest` (whole process)',
      run: async () => timeCommand(CFSBOOT, ['digest', file]),
    },
    {
      name: '`cfsboot digest --json` (whole process, through oclif)',
      run: async () => timeCommand(CFSBOOT, ['digest', '--json', file]),
    },
    {name: `DigestPool, ${cores} workers, main thread idle`, run: () => inPool(file, {})},
    {
      name: `DigestPool, ${cores - 1 || 1} worker(s) + main thread`,
      run: () => inPool(file, {threads: Math.max(1, cores - 1), mainThread: true}),
    },
    {name: `DigestPool, ${cores} workers + main thread`, run: () => inPool(file, {mainThread: true})},
    {name: 'FsVerityHasher on the main thread (1 core)', run: async () => singleThread(file)},
  ]
  // Check the engine agrees with itself before timing it.
  const reference = singleThread(file)
  if (!(await inPool(file, {})).equals(reference)) throw new Error('DigestPool and FsVerityHasher disagree')

  const big = await measure(cases, runs, size)

  // Many small files, as in a root filesystem: one process for all of them.
  const files = smallFiles(SMALL_FILES)
  const smallBytes = files.reduce((n, f) => n + statSync(f).size, 0)
  for (const f of files) readFileSync(f) // into the page cache
  const smallCases: Case[] = [
    ...(hasFsverity
      ? [
          {
            name: `\`fsverity digest\` of ${SMALL_FILES} files`,
            run: async () => timeCommand('fsverity', ['digest', ...files]),
          },
        ]
      : []),
    {
      name: `\`cfsboot digest\` of ${SMALL_FILES} files`,
      run: async () => timeCommand(CFSBOOT, ['digest', ...files]),
    },
    {
      name: `DigestPool.digestFiles, ${cores} workers`,
      run: async () => {
        const pool = new DigestPool()
        await pool.digestFiles(files)
        await pool.close()
      },
    },
  ]
  const small = await measure(smallCases, runs, smallBytes)

  const header = (what: string, m: {noisy: number}) =>
    `${what}, warm page cache, ${cores} cores, Node ${process.version}; median of ${runs} alternating runs` +
    (m.noisy ? ` (${m.noisy} runs started while the machine was busy)` : '')
  console.log(header(`fs-verity digest of ${(size / 2 ** 30).toFixed(2)} GiB of random data`, big))
  console.log()
  console.log(big.table)
  console.log()
  console.log(header(`${SMALL_FILES} files of 0–64 KiB (${(smallBytes / 1e6).toFixed(0)} MB)`, small))
  console.log()
  console.log(small.table)
}

/** Runs every case `runs` times, alternating; a table of medians against the first case. */
async function measure(cases: Case[], runs: number, bytes: number): Promise<{table: string; noisy: number}> {
  const times = cases.map(() => [] as number[])
  let noisy = 0
  for (let r = 0; r < runs; r++) {
    for (const [i, c] of cases.entries()) {
      if (wait && !(await waitForQuiet())) noisy++
      times[i]!.push(await timeMs(c.run))
    }
  }
  const base = cases[0]!.name.includes('fsverity digest') ? median(times[0]!) : undefined
  const rows = cases.map((c, i) => {
    const m = median(times[i]!)
    return [
      c.name,
      m.toFixed(0),
      (bytes / m / 1e6).toFixed(2),
      base === undefined ? '–' : `${(base / m).toFixed(2)}x`,
    ]
  })
  return {table: table(['what', 'ms', 'GB/s', 'vs fsverity'], rows), noisy}
}

await main()
