// Writer for the composefs-dump(5) text format, printing a tree exactly as upstream's
// `composefs-info dump` prints the tree it loads from an image:
//   - depth-first, parents before children, children in byte order of their names;
//   - the first name of an inode in that order carries its data; every later name is an '@'
//     line that repeats the inode's fields and has the first name's path as PAYLOAD;
//   - SIZE, NLINK, RDEV, ... are printed as the node holds them (directories included);
//   - '-' for an absent PAYLOAD, CONTENT or DIGEST, and a real lone '-' escaped as \x2d;
//   - xattrs after the fixed fields, '=' escaped in keys and values.
// The output is plain ASCII: every byte outside printable ASCII is escaped.

import {InvalidInputError} from '../../errors.js'
import {cmpBytes, FsNode, writeHex} from '../../tree/node.js'
import type {Xattr} from '../../tree/node.js'
import {ESCAPE_EQUAL, ESCAPE_LONE_DASH, escapeInto, escapeString, MAX_ESCAPED_BYTES} from './escape.js'

/**
 * The fields of one dump line, as byte ranges so that an image's dump (dump/image.ts) is
 * printed straight from the image bytes. PAYLOAD is payload[payloadStart, payloadEnd) and
 * DIGEST is digest[digestStart, digestEnd), each null when absent.
 */
export interface DumpFields {
  size: number
  mode: number
  nlink: number
  uid: number
  gid: number
  rdev: number
  mtimeSec: number
  mtimeNsec: number
  payload: Uint8Array | null
  payloadStart: number
  payloadEnd: number
  content: Uint8Array | null
  digest: Uint8Array | null
  digestStart: number
  digestEnd: number
  /** PAYLOAD is DIGEST's object path ("xx/" then the rest of its hex), as an image's walk checks. */
  redirectSpellsDigest?: boolean
  xattrs: readonly Xattr[]
}

/**
 * Where dump lines are written: a buffer handed to `drain` when full (or on flush). When
 * `drain` returns true it is done with the bytes and the same buffer is written again;
 * otherwise they are the receiver's to keep, and the next lines go to a new buffer.
 */
export class DumpSink {
  /**
   * A plain Uint8Array, like the paths copied into it: the code writing lines then sees one
   * kind of array (a Buffer and a Uint8Array, met in turn, deoptimize it), and its set,
   * subarray and copyWithin are builtins. `drain` gets a Buffer over the same bytes.
   */
  buf: Uint8Array
  pos = 0

  constructor(
    private readonly size: number,
    private readonly drain: (bytes: Buffer) => unknown,
  ) {
    this.buf = new Uint8Array(size)
  }

  /** Makes room for `n` more bytes (draining what is written when needed); returns the buffer. */
  room(n: number): Uint8Array {
    if (this.pos + n > this.buf.length) {
      this.flush()
      if (n > this.buf.length) this.buf = new Uint8Array(n)
    }
    return this.buf
  }

  flush(): void {
    if (this.pos === 0) return
    const done = this.drain(Buffer.from(this.buf.buffer, this.buf.byteOffset, this.pos)) === true
    if (!done || this.buf.length > this.size) this.buf = new Uint8Array(this.size)
    this.pos = 0
  }
}

const SPACE = 0x20
const NEWLINE = 0x0a
const SLASH = 0x2f
const DASH = 0x2d
/** The path, then eight numbers (none over 21 characters), an '@' and their separators. */
const FIXED_FIELDS_MAX = 8 * 22 + 2

/** radix^i for every i with radix^i <= 2^53: digits are counted by comparing, not dividing. */
const powersOf = (radix: number): number[] => {
  const powers = [1]
  while (powers[powers.length - 1]! * radix <= 2 ** 53) powers.push(powers[powers.length - 1]! * radix)
  return powers
}
const POWERS_OF_10 = powersOf(10)
const POWERS_OF_8 = powersOf(8)

/** Writes an integer (|n| <= 2^53) in base `radix` (8 or 10) at `pos`; returns the position after it. */
function writeInteger(buf: Uint8Array, pos: number, n: number, radix = 10): number {
  // Most fields are small (nlink, uid, gid, rdev): one digit.
  if (n >= 0 && n < radix) {
    buf[pos] = 0x30 + n
    return pos + 1
  }
  if (n < 0) {
    buf[pos++] = DASH
    n = -n
  }
  const powers = radix === 10 ? POWERS_OF_10 : POWERS_OF_8
  let digits = 1
  while (digits < powers.length && n >= powers[digits]!) digits++
  let i = pos + digits - 1
  // Below 2^31 the quotient is an integer division (no Math.floor call per digit).
  for (; n >= 2 ** 31; i--) {
    buf[i] = 0x30 + (n % radix)
    n = Math.floor(n / radix)
  }
  for (; i >= pos; i--) {
    const q = (n / radix) | 0
    buf[i] = 0x30 + n - q * radix
    n = q
  }
  return pos + digits
}

/**
 * A plain Uint8Array over the bytes of the Buffer last asked for: its subarray is a builtin,
 * where a Buffer's runs Buffer's constructor (what copying a path or a redirect per line costs
 * before the JIT has compiled the printer).
 */
let plainOf: Uint8Array | null = null
let plainView: Uint8Array = new Uint8Array(0)
function plain(bytes: Uint8Array): Uint8Array {
  if (bytes !== plainOf) {
    plainOf = bytes
    plainView = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  return plainView
}

/** An escaped field of `src[start, end)`, or '-' when src is null; then `after` (0: nothing). */
function writeField(
  sink: DumpSink,
  src: Uint8Array | null,
  start: number,
  end: number,
  flags: number,
  after: number,
): void {
  const buf = sink.room((end - start) * MAX_ESCAPED_BYTES + 2)
  let p = sink.pos
  if (src === null) buf[p++] = DASH
  else p = escapeInto(buf, p, src, start, end, flags)
  if (after !== 0) buf[p++] = after
  sink.pos = p
}

/** An escaped path ("/" for the root's empty one) and a space. */
function writePath(buf: Uint8Array, pos: number, path: Uint8Array, len: number): number {
  if (len === 0) buf[pos++] = SLASH
  else buf.set(len === path.length ? path : path.subarray(0, len), pos)
  buf[pos + len] = SPACE
  return pos + len + 1
}

/** PAYLOAD (or an '@' line's first path), CONTENT and DIGEST of any line. */
function writeOtherFields(
  sink: DumpSink,
  f: DumpFields,
  firstPath: Uint8Array | null,
  firstPathLen: number,
): void {
  if (firstPath !== null) {
    const buf = sink.room(firstPathLen + 2)
    sink.pos = writePath(buf, sink.pos, firstPath, firstPathLen)
  } else {
    writeField(sink, f.payload, f.payloadStart, f.payloadEnd, ESCAPE_LONE_DASH, SPACE)
  }
  writeField(sink, f.content, 0, f.content?.length ?? 0, ESCAPE_LONE_DASH, SPACE)

  const digestLen = f.digest === null ? 0 : f.digestEnd - f.digestStart
  const buf = sink.room(2 * digestLen + 1)
  let p = sink.pos
  if (f.digest === null) buf[p++] = DASH
  else p = writeHex(buf, p, f.digest, f.digestStart, f.digestEnd)
  sink.pos = p
}

/** Scratch bytes of an xattr key (keys are byte strings). */
let keyBytes = Buffer.allocUnsafe(256)

/**
 * Writes one dump line: `path` (escaped already, pathLen bytes; empty for the root) and the
 * inode's fields. For a later name of a hardlinked inode, `firstPath` is the escaped path of its
 * first name: the line is an '@' line with that path as PAYLOAD.
 */
export function writeLine(
  sink: DumpSink,
  path: Uint8Array,
  pathLen: number,
  f: DumpFields,
  firstPath: Uint8Array | null = null,
  firstPathLen = 0,
): void {
  let buf = sink.room(pathLen + 1 + FIXED_FIELDS_MAX)
  let p = sink.pos
  p = writePath(buf, p, path, pathLen)
  p = writeInteger(buf, p, f.size)
  buf[p++] = SPACE
  if (firstPath !== null) buf[p++] = 0x40 // @
  p = writeInteger(buf, p, f.mode, 8)
  buf[p++] = SPACE
  p = writeInteger(buf, p, f.nlink)
  buf[p++] = SPACE
  p = writeInteger(buf, p, f.uid)
  buf[p++] = SPACE
  p = writeInteger(buf, p, f.gid)
  buf[p++] = SPACE
  p = writeInteger(buf, p, f.rdev)
  buf[p++] = SPACE
  p = writeInteger(buf, p, f.mtimeSec)
  buf[p++] = 0x2e // .
  p = writeInteger(buf, p, f.mtimeNsec)
  buf[p++] = SPACE
  sink.pos = p

  if (firstPath === null && f.redirectSpellsDigest === true && f.content === null) {
    // An external file: PAYLOAD is hex digits and a slash (nothing to escape), CONTENT is
    // absent, and DIGEST is PAYLOAD's digits without the slash, copied from the line itself
    // (copyWithin: no view to allocate).
    const len = f.payloadEnd - f.payloadStart
    buf = sink.room(2 * len + 3)
    p = sink.pos
    buf.set(plain(f.payload!).subarray(f.payloadStart, f.payloadEnd), p)
    const q = p + len
    buf[q] = SPACE
    buf[q + 1] = DASH
    buf[q + 2] = SPACE
    buf.copyWithin(q + 3, p, p + 2)
    buf.copyWithin(q + 5, p + 3, q)
    sink.pos = q + 2 + len
  } else {
    writeOtherFields(sink, f, firstPath, firstPathLen)
  }

  // (Indexed: a for-of allocates an iterator per line, even for no xattrs, until compiled.)
  for (let i = 0; i < f.xattrs.length; i++) {
    const x = f.xattrs[i]!
    if (keyBytes.length < x.key.length) keyBytes = Buffer.allocUnsafe(x.key.length)
    const keyLen = keyBytes.write(x.key, 0, 'latin1')
    sink.room(1)
    sink.buf[sink.pos++] = SPACE
    writeField(sink, keyBytes, 0, keyLen, ESCAPE_EQUAL, 0x3d) // =
    writeField(sink, x.value, 0, x.value.length, ESCAPE_EQUAL, 0)
  }
  sink.room(1)
  sink.buf[sink.pos++] = NEWLINE
}

export interface WriteDumpOptions {
  /**
   * 'sorted' (default): xattrs in byte order of their keys, as the image stores them.
   * 'tree': in the node's own order. Upstream prints an image's inline xattrs before its shared
   * ones; a reader that keeps that order gets upstream's exact text with 'tree'.
   */
  xattrOrder?: 'sorted' | 'tree'
}

interface Pending {
  node: FsNode
  /** Escaped path ("" for the root). Escaping works byte by byte, so paths escape piecewise. */
  path: string
}

/** Write the dump of `root` line by line through `out` (each call gets one complete line). */
export function writeDump(root: FsNode, out: (chunk: string) => void, opts: WriteDumpOptions = {}): void {
  const sorted = (opts.xattrOrder ?? 'sorted') === 'sorted'
  const sink = new DumpSink(1 << 16, (bytes) => {
    out(bytes.toString('latin1'))
    return true
  })
  const firstPath = new Map<FsNode, Buffer>()
  const stack: Pending[] = [{node: root, path: ''}]
  while (stack.length > 0) {
    const {node, path} = stack.pop()!
    const inode = targetOf(node, path)
    const pathBytes = Buffer.from(path, 'latin1')
    const first = firstPath.get(inode)
    if (first === undefined) firstPath.set(inode, pathBytes)
    writeLine(sink, pathBytes, pathBytes.length, fieldsOf(inode, sorted), first ?? null, first?.length ?? 0)
    sink.flush()

    const children = node.sortedChildren()
    for (let i = children.length - 1; i >= 0; i--) {
      const child = children[i]!
      stack.push({node: child, path: path + '/' + escapeString(child.name!)})
    }
  }
}

/** The dump of `root` as one string. */
export function dumpToString(root: FsNode, opts: WriteDumpOptions = {}): string {
  const lines: string[] = []
  writeDump(root, (l) => lines.push(l), opts)
  return lines.join('')
}

function targetOf(node: FsNode, path: string): FsNode {
  try {
    return node.target()
  } catch {
    throw new InvalidInputError(`dump: hardlink cycle at ${path || '/'}`)
  }
}

function fieldsOf(inode: FsNode, sortXattrs: boolean): DumpFields {
  const payload = inode.payload === null ? null : Buffer.from(inode.payload, 'latin1')
  return {
    ...inode,
    payload,
    payloadStart: 0,
    payloadEnd: payload?.length ?? 0,
    digestStart: 0,
    digestEnd: inode.digest?.length ?? 0,
    xattrs:
      sortXattrs && inode.xattrs.length > 1
        ? [...inode.xattrs].sort((a, b) => cmpBytes(a.key, b.key))
        : inode.xattrs,
  }
}
