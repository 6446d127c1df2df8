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
