// Field decoding for composefs-dump lines: numbers with upstream's accepted syntax but no
// wrapping, mtimes, and the one-line error quoting the parser uses. Pure functions over a line's
// bytes; a bad field throws LineError, which the parser turns into "dump line N: …".

import {
  FsNode,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
} from '../../tree/node.js'
import {escapeString} from './escape.js'

const DOT = 0x2e
export const U32_MAX = 0xffffffff
export const U64_MAX = (1n << 64n) - 1n
/** 2^64 has 20 decimal and 22 octal digits; longer numbers are out of range for every field. */
const MAX_SIGNIFICANT_DIGITS = 22

/** A problem in the current line (the parser adds the line number). */
export class LineError extends Error {}

export function validType(mode: number): boolean {
  switch (mode & S_IFMT) {
    case S_IFREG:
    case S_IFDIR:
    case S_IFLNK:
    case S_IFBLK:
    case S_IFCHR:
    case S_IFSOCK:
    case S_IFIFO:
      return true
    default:
      return false
  }
}

export /** Quote a byte string for an error message, escaped so the message stays on one line. */
function q(s: string, max = 200): string {
  const e = escapeString(s)
  return `"${e.length > max ? e.slice(0, max) + '...' : e}"`
}

export function noNul(s: string, what: string): string {
  if (s.includes('\0')) throw new LineError(`NUL byte in ${what} ${q(s)}`)
  return s
}

export function text(line: Buffer, start: number, end: number): string {
  return line.toString('latin1', start, end)
}

/** Significant digits that always give a number below 2^53 (exact): 15 decimal, 17 octal. */
const EXACT_DIGITS = {8: 17, 10: 15} as const

/**
 * Digits only: no sign, no blanks, no prefix (upstream's strtoull would take and wrap those).
 * The value is a number when it is certainly exact (few enough significant digits, the common
 * case, computed without a string), otherwise a bigint: callers compare either with limits.
 */
export function parseUnsigned(
  line: Buffer,
  start: number,
  end: number,
  radix: 8 | 10,
  what: string,
): number | bigint {
  const maxDigit = radix === 8 ? 0x37 : 0x39
  let ok = end > start
  let value = 0
  for (let i = start; ok && i < end; i++) {
    const c = line[i]!
    if (c < 0x30 || c > maxDigit) ok = false
    else value = value * radix + (c - 0x30)
  }
  if (!ok) {
    const s = text(line, start, Math.min(end, start + 64))
    throw new LineError(
      `invalid ${what} ${q(s, 40)}: expected ${radix === 8 ? 'an octal' : 'a decimal'} number`,
    )
  }
  // Leading zeros are fine (strtoull takes them); more significant digits than any 64-bit
  // value has are refused before BigInt spends time on them.
  let first = start
  while (first < end - 1 && line[first] === 0x30) first++
  if (end - first <= EXACT_DIGITS[radix]) return value
  if (end - first > MAX_SIGNIFICANT_DIGITS) {
    throw new LineError(`${what} ${q(text(line, first, first + 30) + '...')} out of range`)
  }
  const s = text(line, first, end)
  return radix === 8 ? BigInt('0o' + s) : BigInt(s)
}

/**
 * MTIME is "SEC.NSEC", two decimal integers (not a fraction: "1.1" is 1 s + 1 ns); sets the
 * node's (no tuple per line: destructuring one is costly in code not yet optimized).
 */
export function parseMtime(line: Buffer, start: number, end: number, node: FsNode): void {
  let dot = start
  while (dot < end && line[dot] !== DOT) dot++
  const sec = parseUnsigned(line, start, dot, 10, 'mtime seconds')
  const nsec = parseUnsigned(line, Math.min(dot + 1, end), end, 10, 'mtime nanoseconds')
  if (sec > Number.MAX_SAFE_INTEGER) throw new LineError(`mtime seconds ${sec} out of range`)
  if (nsec > U32_MAX) throw new LineError(`mtime nanoseconds ${nsec} out of range`)
  node.mtimeSec = Number(sec)
  node.mtimeNsec = Number(nsec)
}

/** Upstream's lookup_path: components split on runs of '/', "" or "/" is the root. */
export function lookupPath(root: FsNode, path: string): FsNode | null | 'dotdot' {
  let n = root
  for (const part of path.split('/')) {
    if (part.length === 0) continue
    if (part === '.' || part === '..') return 'dotdot'
    const next = n.children?.get(part)
    if (!next) return null
    n = next
  }
  return n
}
