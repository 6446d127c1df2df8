// Escaping for composefs-dump(5) fields, shared by the parser and the writer.
//
// Unescaping accepts what mkcomposefs accepts: `\\`, `\n`, `\r`, `\t` and `\xHH` (either case);
// any other byte stands for itself. Escaping produces exactly what `composefs-info dump` prints:
// backslash and the three control characters get their short form, every byte that is not a
// printable non-space ASCII character (C locale `isgraph`) becomes `\xhh` (lower case), and
// two field-specific rules can be switched on with flags.

import {HEX_DIGITS} from '../../tree/node.js'

/** Escape `=` too (xattr keys and values, where `=` separates them). */
export const ESCAPE_EQUAL = 1
/** A field consisting of a single `-` would read back as "absent": write it as `\x2d`. */
export const ESCAPE_LONE_DASH = 2

const BACKSLASH = 0x5c
const DASH = 0x2d
const EQUAL = 0x3d

/** A malformed escape sequence; the parser adds the line number and the field. */
export class EscapeError extends Error {}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  return -1
}

/**
 * Decode the escaped bytes `buf[start, end)`. Returns a new Buffer (never a view of `buf`, so
 * callers may keep it after `buf` is reused). Throws EscapeError on a bad escape.
 */
export function unescapeBytes(buf: Uint8Array, start = 0, end = buf.length): Buffer {
  // Fast path: most fields contain no escapes at all.
  let i = start
  while (i < end && buf[i] !== BACKSLASH) i++
  if (i === end) return Buffer.from(buf.subarray(start, end))

  const out = Buffer.allocUnsafe(end - start)
  let o = 0
  for (let j = start; j < i; j++) out[o++] = buf[j]!
  while (i < end) {
    const c = buf[i++]!
    if (c !== BACKSLASH) {
      out[o++] = c
      continue
    }
    if (i >= end) throw new EscapeError('no character after escape')
    const e = buf[i++]!
    switch (e) {
      case BACKSLASH:
        out[o++] = BACKSLASH
        break
      case 0x6e: // n
        out[o++] = 0x0a
        break
      case 0x72: // r
        out[o++] = 0x0d
        break
      case 0x74: // t
        out[o++] = 0x09
        break
      case 0x78: {
        // x
        if (i + 2 > end) throw new EscapeError('no hex digits after \\x escape')
        const hi = hexValue(buf[i]!)
        const lo = hexValue(buf[i + 1]!)
        if (hi < 0 || lo < 0) throw new EscapeError('invalid hex digits after \\x escape')
        out[o++] = (hi << 4) | lo
        i += 2
        break
      }
      default:
        throw new EscapeError(`unsupported escape \\${printableByte(e)}`)
    }
  }
  return out.subarray(0, o)
}

/** Decode an escaped byte string (latin1) into bytes. */
export function unescapeString(s: string): Buffer {
  return unescapeBytes(Buffer.from(s, 'latin1'))
}

function printableByte(c: number): string {
  return c > 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${hex2(c)}`
}

function hex2(c: number): string {
  return (c < 16 ? '0' : '') + c.toString(16)
}

/**
 * What each byte escapes to: 0 for itself, else the character after the backslash (`x` for
 * `\xhh`). '=' is itself here; ESCAPE_EQUAL escapes it too. A table rather than a test per
 * byte, as escapeInto runs over every byte of a dump.
 */
const ESCAPE = new Uint8Array(256).map((_, c) =>
  c === BACKSLASH
    ? BACKSLASH
    : c === 0x0a
      ? 0x6e
      : c === 0x0d
        ? 0x72
        : c === 0x09
          ? 0x74
          : c <= 0x20 || c >= 0x7f
            ? 0x78
            : 0,
)
const X = 0x78

function needsEscape(c: number, flags: number): boolean {
  return ESCAPE[c] !== 0 || (c === EQUAL && (flags & ESCAPE_EQUAL) !== 0)
}

/** The most bytes one input byte escapes to (`\xhh`): callers size the output by this. */
export const MAX_ESCAPED_BYTES = 4

/**
 * Escapes src[start, end) for a dump field into `out` at `pos` (which must have room for
 * MAX_ESCAPED_BYTES per input byte); returns the position after it.
 */
export function escapeInto(
  out: Uint8Array,
  pos: number,
  src: Uint8Array,
  start: number,
  end: number,
  flags = 0,
): number {
  if ((flags & ESCAPE_LONE_DASH) !== 0 && end - start === 1 && src[start] === DASH) {
    out[pos] = BACKSLASH
    out[pos + 1] = X
    out[pos + 2] = HEX_DIGITS[DASH >> 4]!
    out[pos + 3] = HEX_DIGITS[DASH & 15]!
    return pos + 4
  }
  const equal = (flags & ESCAPE_EQUAL) !== 0 ? X : 0
  for (let i = start; i < end; i++) {
    const c = src[i]!
    const e = c === EQUAL ? equal : ESCAPE[c]!
    if (e === 0) {
      out[pos++] = c
      continue
    }
    out[pos++] = BACKSLASH
    out[pos++] = e
    if (e === X) {
      out[pos++] = HEX_DIGITS[c >> 4]!
      out[pos++] = HEX_DIGITS[c & 15]!
    }
  }
  return pos
}

/** Escape bytes for a dump field. The result is plain ASCII. */
export function escapeBytes(buf: Uint8Array, flags = 0): string {
  let i = 0
  while (i < buf.length && !needsEscape(buf[i]!, flags)) i++
  const plain = i === buf.length && !((flags & ESCAPE_LONE_DASH) !== 0 && buf.length === 1 && buf[0] === DASH)
  if (plain) return Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength).toString('latin1')
  const out = Buffer.allocUnsafe(buf.length * MAX_ESCAPED_BYTES)
  return out.toString('latin1', 0, escapeInto(out, 0, buf, 0, buf.length, flags))
}

/** Escape a byte string (latin1: names, keys, payloads) for a dump field. */
export function escapeString(s: string, flags = 0): string {
  if ((flags & ESCAPE_LONE_DASH) !== 0 && s === '-') return '\\x2d'
  let plain = true
  for (let i = 0; i < s.length; i++) {
    if (needsEscape(s.charCodeAt(i), flags)) {
      plain = false
      break
    }
  }
  if (plain) return s
  return escapeBytes(Buffer.from(s, 'latin1'), flags)
}
