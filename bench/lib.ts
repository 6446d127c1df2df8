// Small helpers for benchmarks: timing, medians, a cached random input file, and waiting for a
// quiet machine (other jobs on a 2-core machine make a parallel benchmark meaningless).
import {spawnSync} from 'node:child_process'
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs'
import {randomFillSync} from 'node:crypto'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

/**
 * The command users run (bin/cfsboot, the launcher in front of bin/run.js): benchmarks time it,
 * not `node bin/run.js`, so they include what the launcher does and saves.
 */
export const CFSBOOT = fileURLToPath(new URL('../../bin/cfsboot', import.meta.url))
export const BENCH_CACHE = process.env.CFSBOOT_BENCH_CACHE ?? '/tmp/cfsboot-bench'

/** A file of `size` random bytes under BENCH_CACHE, made once and reused. */
export function randomFile(name: string, size: number): string {
  mkdirSync(BENCH_CACHE, {recursive: true})
  const path = join(BENCH_CACHE, name)
  if (existsSync(path) && statSync(path).size === size) return path
  const tmp = `${path}.tmp${process.pid}`
  const fd = openSync(tmp, 'w')
  const chunk = Buffer.alloc(8 << 20)
  for (let left = size; left > 0; left -= chunk.length) {
    randomFillSync(chunk)
    writeSync(fd, chunk, 0, Math.min(left, chunk.length))
  }
  closeSync(fd)
  renameSync(tmp, path)
  return path
}

/** Reads `path` once so the runs that follow find it in the page cache. */
export function warmCache(path: string): void {
  spawnSync('cat', [path], {stdio: ['ignore', 'ignore', 'inherit']})
}

function cpuTimes(): {busy: number; total: number} {
  const cpu = readFileSync('/proc/stat', 'latin1').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number)
  const total = cpu.reduce((a, b) => a + b, 0)
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0)
  return {busy: total - idle, total}
}

/**
 * Waits (up to `maxMs`) until the machine's CPUs were at most `maxBusy` busy over 300 ms, so
 * a measurement is not shared with someone else's job. Returns false if it never got quiet.
 */
export async function waitForQuiet(maxBusy = 0.1, maxMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + maxMs
  while (Date.now() < deadline) {
    const a = cpuTimes()
    await new Promise((r) => setTimeout(r, 300))
    const b = cpuTimes()
    if ((b.busy - a.busy) / Math.max(1, b.total - a.total) <= maxBusy) return true
  }
  return false
}

/** Wall time of `fn` in milliseconds. */
export async function timeMs(fn: () => unknown): Promise<number> {
  const t = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - t) / 1e6
}

/** Wall time of running a command to its end, in milliseconds; throws if it fails. */
export function timeCommand(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint()
  const r = spawnSync(cmd, args, {stdio: ['ignore', 'ignore', 'inherit']})
  const ms = Number(process.hrtime.bigint() - t) / 1e6
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal})`)
  return ms
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

/** A markdown table. */
export function table(head: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`
  return [line(head), line(head.map(() => '---')), ...rows.map(line)].join('\n')
}

/** One whole-process run: wall time and peak resident memory (KiB; 0 when unknown). */
export interface ProcessRun {
  ms: number
  rssKiB: number
  /** User + system CPU time in ms (0 when unknown): steadier than wall time on a loaded machine. */
  cpuMs: number
}

const GNU_TIME = '/usr/bin/time'

/**
 * Runs `cmd args` to its end, stdout to `stdoutFile` (or discarded), and measures it: wall time
 * here, peak RSS from GNU time's %M when /usr/bin/time exists. Throws if the command fails.
 */
export function measureProcess(cmd: string, args: string[], stdoutFile?: string): ProcessRun {
  const rssFile = join(BENCH_CACHE, `.rss-${process.pid}`)
  mkdirSync(BENCH_CACHE, {recursive: true})
  const withTime = existsSync(GNU_TIME)
  const out = stdoutFile ? openSync(stdoutFile, 'w') : 'ignore'
  const t = process.hrtime.bigint()
  const r = withTime
    ? spawnSync(GNU_TIME, ['-f', '%M %U %S', '-o', rssFile, cmd, ...args], {stdio: ['ignore', out, 'pipe']})
    : spawnSync(cmd, args, {stdio: ['ignore', out, 'pipe']})
  const ms = Number(process.hrtime.bigint() - t) / 1e6
  if (typeof out === 'number') closeSync(out)
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().trim().split('\n').pop()}`)
  const [rss = 0, user = 0, sys = 0] = withTime
    ? readFileSync(rssFile, 'latin1').trim().split('\n').pop()!.split(' ').map(Number)
    : []
  return {ms, rssKiB: rss, cpuMs: (user + sys) * 1000}
}

/** Median and spread of repeated runs. */
export interface Summary {
  median: number
  min: number
  max: number
  rssKiB: number
  cpuMs: number
}

export function summarize(runs: ProcessRun[]): Summary {
  const ms = runs.map((r) => r.ms)
  return {
    median: median(ms),
    min: Math.min(...ms),
    max: Math.max(...ms),
    rssKiB: median(runs.map((r) => r.rssKiB)),
    cpuMs: median(runs.map((r) => r.cpuMs)),
  }
}

/** "1.23 s (1.20–1.31), cpu 1.10 s, 42 MiB": median wall time, spread, CPU time, peak RSS. */
export function formatSummary(s: Summary): string {
  const sec = (ms: number): string => (ms / 1000).toFixed(ms < 10_000 ? 2 : 1)
  const cpu = s.cpuMs ? `, cpu ${sec(s.cpuMs)} s` : ''
  const mem = s.rssKiB ? `, ${(s.rssKiB / 1024).toFixed(0)} MiB` : ''
  return `${sec(s.median)} s (${sec(s.min)}–${sec(s.max)})${cpu}${mem}`
}
