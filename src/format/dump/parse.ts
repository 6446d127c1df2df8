// Parser for the composefs-dump(5) text format: one file per line, 11 space-separated fields
// (PATH SIZE MODE NLINK UID GID RDEV MTIME PAYLOAD CONTENT DIGEST) followed by KEY=VALUE xattrs.
//
// The tree it builds is the one upstream's `mkcomposefs --from-file` builds (tools/mkcomposefs.c
// and the node setters of libcomposefs/lcfs-writer.c), so that images written from it are
// byte-identical to upstream's. Where upstream silently truncates, wraps or reads undefined
// memory on nonsense input, this parser refuses the input instead; and it refuses some hostile
// input upstream lets through (`.`/`..` anywhere in a path, absurd sizes, overlong lines).
// Every refusal is an InvalidInputError whose one-line message starts with "dump line N:".
//
// Input is processed line by line with constant work per byte, so huge dumps parse in linear
// time and a stream is never held in memory as a whole.

import {InvalidInputError} from '../../errors.js'
import {FsNode, S_IFBLK, S_IFCHR, S_IFLNK, S_IFMT} from '../../tree/node.js'
import {Limits, MAX_NONINLINE_CHUNKS} from '../erofs/layout.js'
import {NAME_MAX} from '../../tree/limits.js'
import {putXattr} from '../erofs/xattr-space.js'
import {EscapeError, unescapeBytes} from './escape.js'
import {
  LineError,
  lookupPath,
  noNul,
  parseMtime,
  parseUnsigned,
  q,
  text,
  U32_MAX,
  U64_MAX,
  validType,
} from './fields.js'

export interface ParseDumpOptions {
  /**
   * Upstream's CFS_PARSE_STRICT: a missing final newline, a nonzero RDEV on a non-device, a
   * symlink whose SIZE differs from its target's length or that has CONTENT are errors.
   * Default false, like upstream.
   */
  strict?: boolean
}

export type DumpInput = Buffer | Uint8Array | string | AsyncIterable<Buffer | Uint8Array | string>

/**
 * Longest line accepted. Upstream has no limit; the longest meaningful line is far shorter
 * (payload < 4096, content <= 5000, xattrs <= 65535 bytes, all at most 4x when escaped), so this
 * only bounds the memory a hostile stream without newlines can make us hold.
 */
export const DUMP_MAX_LINE_BYTES = 1 << 20
/** Upstream refuses a line whose xattr part (after the fixed fields) is longer than this. */
export const DUMP_MAX_XATTR_FIELD_BYTES = 0xffff
/** Largest accepted SIZE: a file needs more than 1024 chunks beyond it (upstream: EFBIG). */
export const DUMP_MAX_FILE_SIZE = Limits.maxFileSize

const FIELD_COUNT = 11
const F = {
  path: 0,
  size: 1,
  mode: 2,
  nlink: 3,
  uid: 4,
  gid: 5,
  rdev: 6,
  mtime: 7,
  payload: 8,
  content: 9,
  digest: 10,
}

const SPACE = 0x20
const SLASH = 0x2f
const BACKSLASH = 0x5c
const NEWLINE = 0x0a
const EQUAL = 0x3d
const AT = 0x40
const DASH = 0x2d

/** A directory recently added, under the exact path text its line gave. */
interface RecentDir {
  path: string
  node: FsNode
}

interface HardlinkFixup {
  node: FsNode
  targetPath: string
  line: number
}

/** Builds the tree from lines fed one at a time; `finish()` resolves hardlinks and returns the root. */
export class DumpParser {
  private readonly strict: boolean
  private root: FsNode | null = null
  private lineNo = 0
  private readonly fixups: HardlinkFixup[] = []
  private pending: Buffer[] = []
  private pendingLen = 0
  // Field boundaries of the current line, reused to avoid per-line allocation.
  private readonly starts = new Int32Array(FIELD_COUNT)
  private readonly ends = new Int32Array(FIELD_COUNT)
  /** Position of the current line's first backslash (its end when none): fields before it need no unescaping. */
  private firstEscape = 0
  /** Position of the current line's first NUL byte, or -1. */
  private firstNul = -1
  /** Where the current line's xattrs begin (its end when it has none). */
  private xattrStart = 0
  /** The current line's path: its bytes, and its text when it had escapes. */
  private pathLine: Buffer | null = null
  private pathStart = 0
  private pathEnd = 0
  private pathUnescaped: string | null = null
  /**
   * The directories on the way to the last entry, root first. Dumps list a directory's entries
   * right after it (upstream's and ours do), so a line's parent is nearly always here: found by
   * comparing its path text, not by walking the tree from the root component by component.
   * Each path is the exact text that resolved to its directory, so an equal text resolves to
   * the same one; anything not found here takes the full walk (addToTree).
   */
  private readonly recentDirs: RecentDir[] = []

  constructor(opts: ParseDumpOptions = {}) {
    this.strict = opts.strict ?? false
  }

  /**
   * Feed a chunk of input; complete lines are parsed immediately, in place: a line is a range
   * of the chunk, split by one pass over its bytes (scan), not a Buffer of its own split by a
   * native call per field (each call's overhead cost more than the bytes it skipped).
   */
  feed(chunk: Uint8Array): void {
    const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let start = 0
    if (this.pendingLen > 0) {
      // The rest of a line begun in an earlier chunk: that line alone is put together.
      const nl = buf.indexOf(NEWLINE)
      if (nl < 0) {
        this.keep(buf, 0)
        return
      }
      this.checkLength(this.pendingLen + nl)
      this.pending.push(buf.subarray(0, nl))
      const line = Buffer.concat(this.pending, this.pendingLen + nl)
      this.pending = []
      this.pendingLen = 0
      this.parseLine(line, 0, this.scan(line, 0))
      start = nl + 1
    }
    while (start < buf.length) {
      const end = this.scan(buf, start)
      if (end === buf.length) break
      this.checkLength(end - start)
      this.parseLine(buf, start, end)
      start = end + 1
    }
    if (start < buf.length) this.keep(buf, start)
  }

  /** Keeps the unterminated end of a chunk, from `start`, for the next one. */
  private keep(buf: Buffer, start: number): void {
    this.checkLength(this.pendingLen + buf.length - start)
    // Copy: the producer may reuse its buffer after we return.
    this.pending.push(Buffer.from(buf.subarray(start)))
    this.pendingLen += buf.length - start
  }

  /**
   * Splits the line that starts at `start` into its fixed fields (starts, ends, xattrStart)
   * and notes its first backslash and NUL, up to its newline; returns the newline's position,
   * or buf.length when there is none. Missing trailing fields are empty, like upstream's
   * split_at().
   */
  private scan(buf: Buffer, start: number): number {
    const {starts, ends} = this
    const len = buf.length
    let field = 0
    let escape = -1
    let nul = -1
    starts[0] = start
    let i = start
    for (; i < len; i++) {
      const c = buf[i]!
      if (c > SPACE && c !== BACKSLASH) continue
      if (c === SPACE) {
        if (field < FIELD_COUNT) {
          ends[field++] = i
          if (field < FIELD_COUNT) starts[field] = i + 1
          else this.xattrStart = i + 1
        }
      } else if (c === NEWLINE) break
      else if (c === BACKSLASH) {
        if (escape < 0) escape = i
      } else if (c === 0 && nul < 0) nul = i
    }
    if (field < FIELD_COUNT) {
      ends[field] = i
      for (let f = field + 1; f < FIELD_COUNT; f++) starts[f] = ends[f] = i
      this.xattrStart = i
    }
    this.firstEscape = escape < 0 ? i : escape
    this.firstNul = nul
    return i
  }

  /** End of input: parse an unterminated last line, resolve hardlinks, return the root. */
  finish(): FsNode {
    if (this.pendingLen > 0) {
      const line = Buffer.concat(this.pending, this.pendingLen)
      this.pending = []
      this.pendingLen = 0
      if (this.strict) {
        this.lineNo++
        throw this.error('missing newline at the end of the last line (strict mode)')
      }
      this.parseLine(line, 0, this.scan(line, 0))
    }
    if (!this.root) {
      this.lineNo++
      throw this.error('no root directory: the dump is empty')
    }
    this.pathLine = null
    this.resolveHardlinks()
    return this.root
  }

  private error(msg: string, line = this.lineNo): InvalidInputError {
    return new InvalidInputError(`dump line ${line}: ${msg}`, {line})
  }

  private checkLength(len: number): void {
    if (len > DUMP_MAX_LINE_BYTES) {
      throw this.error(`line longer than ${DUMP_MAX_LINE_BYTES} bytes`, this.lineNo + 1)
    }
  }

  /** Parses `line[start, end)`, which scan() has just split. */
  private parseLine(line: Buffer, start: number, end: number): void {
    this.lineNo++
    try {
      this.parseFields(line, start, end)
    } catch (err) {
      if (err instanceof LineError) throw this.error(err.message)
      throw err
    }
  }

  private parseFields(line: Buffer, lineStart: number, lineEnd: number): void {
    // Upstream refuses raw NUL bytes up front (they only make parsing ambiguous).
    if (this.firstNul >= 0) throw new LineError(`embedded NUL byte at position ${this.firstNul - lineStart}`)
    const {starts, ends, xattrStart} = this

    // Most paths have no escapes: they are placed from the line's bytes (placePlain), and their
    // text is made only for an error message.
    const pathStart = starts[F.path]!
    const pathEnd = ends[F.path]!
    const plainPath = this.isPlain(line, pathStart, pathEnd)
    const path = plainPath ? null : this.byteStringField(line, F.path, 'path')
    if (plainPath ? pathEnd === pathStart : path!.length === 0) throw new LineError('empty path')
    // For messages (no closure: one would put this function's variables in a context object).
    this.pathLine = line
    this.pathStart = pathStart
    this.pathEnd = pathEnd
    this.pathUnescaped = path

    let modeStart = starts[F.mode]!
    const isHardlink = modeStart < ends[F.mode]! && line[modeStart] === AT
    if (isHardlink) modeStart++
    const rawMode = parseUnsigned(line, modeStart, ends[F.mode]!, 8, 'mode')
    if (rawMode > U32_MAX) throw new LineError(`mode ${text(line, modeStart, ends[F.mode]!)} out of range`)
    // Upstream keeps a 32-bit mode but only its low 16 bits reach the image (i_mode is 16 bits).
    const mode = Number(rawMode) & 0xffff
    if (!validType(mode)) throw new LineError(`invalid file type in mode ${Number(rawMode).toString(8)}`)

    const node = new FsNode(mode)
    if (plainPath) this.placePlain(line, pathStart, pathEnd, node)
    else this.addToTree(path!, node)

    if (isHardlink) {
      // Upstream ignores every other field of a hardlink line.
      if (node.isDir()) throw new LineError(`directories cannot be hardlinked: ${q(this.pathText())}`)
      const target = this.optionalByteStringField(line, F.payload, 'hardlink target')
      if (target === null) throw new LineError(`hardlink ${q(this.pathText())} has no target path`)
      this.fixups.push({node, targetPath: target, line: this.lineNo})
      return
    }

    const size = parseUnsigned(line, starts[F.size]!, ends[F.size]!, 10, 'size')
    if (size > DUMP_MAX_FILE_SIZE) {
      throw new LineError(
        `absurd size ${size}: no file can exceed 2^53 bytes (${MAX_NONINLINE_CHUNKS} chunks; upstream fails with EFBIG)`,
      )
    }
    const nlink = this.u32Field(line, F.nlink, 'nlink')
    const uid = this.u32Field(line, F.uid, 'uid')
    const gid = this.u32Field(line, F.gid, 'gid')
    const rdev = parseUnsigned(line, starts[F.rdev]!, ends[F.rdev]!, 10, 'rdev')
    if (rdev > U64_MAX) throw new LineError(`rdev ${rdev} out of range`)
    parseMtime(line, starts[F.mtime]!, ends[F.mtime]!, node)

    const payload = this.optionalByteStringField(line, F.payload, 'payload')
    const content = this.optionalField(line, F.content, 'content')
    if (content !== null && Number(size) !== content.length) {
      throw new LineError(`content is ${content.length} bytes but size is ${size}`)
    }
    const digest = this.hexDigest(line)
    const digestText = digest ? null : this.optionalByteStringField(line, F.digest, 'digest')

    const type = mode & S_IFMT
    const isDevice = type === S_IFCHR || type === S_IFBLK
    node.nlink = nlink
    node.uid = uid
    node.gid = gid
    if (isDevice) {
      if (rdev > U32_MAX) throw new LineError(`rdev ${rdev} out of range (the image stores 32 bits)`)
      node.rdev = Number(rdev)
    } else if (this.strict && Number(rdev) !== 0) {
      throw new LineError(`nonzero rdev ${rdev} on a non-device (strict mode)`)
    }

    if (type === S_IFLNK) {
      if (payload === null || payload.length === 0)
        throw new LineError(`symlink ${q(this.pathText())} has no target`)
      if (payload.length >= Limits.pathMax) {
        throw new LineError(
          `symlink target is ${payload.length} bytes, at most ${Limits.pathMax - 1} allowed`,
        )
      }
      // Upstream ignores the SIZE field of a symlink: its size is its target's length.
      node.size = payload.length
      if (this.strict) {
        if (Number(size) !== payload.length) {
          throw new LineError(
            `symlink size ${size} differs from its target's length ${payload.length} (strict mode)`,
          )
        }
        if (content !== null && content.length > 0)
          throw new LineError('a symlink cannot have content (strict mode)')
      }
      // Content given for a symlink (non-strict) is dropped, as upstream does.
    } else {
      if (payload !== null && payload.length >= Limits.pathMax) {
        throw new LineError(`payload is ${payload.length} bytes, at most ${Limits.pathMax - 1} allowed`)
      }
      if (content !== null && content.length > Limits.inlineContentMax) {
        throw new LineError(
          `inline content of ${content.length} bytes exceeds the maximum of ${Limits.inlineContentMax}`,
        )
      }
      node.size = Number(size)
      // lcfs_node_set_content: empty content means none. Upstream keeps content on any
      // non-symlink type (only regular files use it when writing).
      node.content = content !== null && content.length > 0 ? content : null
    }
    node.payload = payload
    node.digest = digest ?? this.parseDigest(digestText, node)

    if (lineEnd - xattrStart > DUMP_MAX_XATTR_FIELD_BYTES) {
      throw new LineError(
        `xattrs take ${lineEnd - xattrStart} bytes, at most ${DUMP_MAX_XATTR_FIELD_BYTES} allowed`,
      )
    }
    if (xattrStart < lineEnd) this.parseXattrs(line, xattrStart, lineEnd, node)
  }

  private parseDigest(digestText: string | null, node: FsNode): Buffer | null {
    if (digestText === null) return null
    if (/^[0-9a-fA-F]{64}$/.test(digestText)) return Buffer.from(digestText, 'hex')
    // A line cut short leaves DIGEST empty; upstream then marks the digest as set with undefined
    // bytes. That is harmless where upstream never uses a digest, and refused where it does.
    const usesDigest = node.isReg() && node.size > 0 && node.content === null
    if (digestText.length === 0 && !usesDigest) return null
    throw new LineError(`invalid digest ${q(digestText)}: expected 64 hex digits or -`)
  }

  /** Add a node at `path`, with upstream's rules (tree_add_node, lcfs_node_add_child) and ours. */
  private addToTree(path: string, node: FsNode): void {
    if (path === '/') {
      if (!node.isDir()) throw new LineError('the root must be a directory')
      if (this.root) throw new LineError('duplicate root directory "/"')
      this.root = node
      this.recentDirs.push({path: '', node})
      return
    }
    if (!this.root) throw new LineError(`${q(path)} comes before the root directory "/"`)

    // Like upstream, repeated slashes separate components and a leading slash is optional.
    const parts = path.split('/')
    const name = parts[parts.length - 1]!
    let parent = this.root
    for (let i = 0; i < parts.length - 1; i++) {
      const part = parts[i]!
      if (part.length === 0) continue
      if (part === '.' || part === '..') throw new LineError(`invalid . or .. in path ${q(path)}`)
      const next = parent.children?.get(part)
      if (!next) throw new LineError(`parent directory missing for ${q(path)}`)
      parent = next
    }
    this.addNamed(parent, name, node)
    if (node.isDir()) {
      this.recentDirs.length = 1
      this.recentDirs.push({path, node})
    }
  }

  /**
   * addToTree for a path without escapes, `line[start, end)`: the parent is looked up among
   * the recent directories by the text before the last slash (the same rules hold: that text
   * resolved to it before, component by component), else the path takes the full walk.
   */
  private placePlain(line: Buffer, start: number, end: number, node: FsNode): void {
    let slash = end - 1
    while (slash >= start && line[slash] !== SLASH) slash--
    if (slash < start || !this.root || end - start === 1) {
      this.addToTree(text(line, start, end), node)
      return
    }
    const parentPath = text(line, start, slash)
    const dirs = this.recentDirs
    let i = dirs.length - 1
    while (i >= 0 && dirs[i]!.path !== parentPath) i--
    if (i < 0) {
      this.addToTree(text(line, start, end), node)
      return
    }
    dirs.length = i + 1
    // The name as a string of its own (a slice of the path's text would keep all of it alive).
    this.addNamed(dirs[i]!.node, text(line, slash + 1, end), node)
    if (node.isDir()) dirs.push({path: text(line, start, end), node})
  }

  /** The current line's path, for messages. */
  private pathText(): string {
    return this.pathUnescaped ?? text(this.pathLine!, this.pathStart, this.pathEnd)
  }

  /** The checks on the last component and the insertion. */
  private addNamed(parent: FsNode, name: string, node: FsNode): void {
    if (name === '.' || name === '..') throw new LineError(`invalid . or .. in path ${q(this.pathText())}`)
    if (name.length === 0) throw new LineError(`empty file name in path ${q(this.pathText())}`)
    if (name.length > NAME_MAX) {
      throw new LineError(
        `file name of ${name.length} bytes is longer than ${NAME_MAX} in path ${q(this.pathText())}`,
      )
    }
    if (!parent.isDir() || !parent.children || parent.linkTo) {
      throw new LineError(`parent of ${q(this.pathText())} is not a directory`)
    }
    if (parent.children.has(name)) throw new LineError(`duplicate path ${q(this.pathText())}`)
    parent.addChild(name, node)
  }

  private parseXattrs(line: Buffer, start: number, lineEnd: number, node: FsNode): void {
    // Setting a key again replaces its value, with upstream's bookkeeping (lcfs_node_unset_xattr
    // moves the last xattr into the freed slot) so the order matches upstream's too.
    const xattrs = node.xattrs
    let space = 0
    let pos = start
    while (pos < lineEnd) {
      // Searches end at the line's end: the buffer may hold more lines.
      let end = line.indexOf(SPACE, pos)
      if (end < 0 || end > lineEnd) end = lineEnd
      const eq = line.indexOf(EQUAL, pos)
      if (eq < 0 || eq >= end) throw new LineError(`missing = in xattr ${q(text(line, pos, end), 60)}`)

      const key = this.isPlain(line, pos, eq)
        ? text(line, pos, eq)
        : this.unescape(line, pos, eq, 'xattr key').toString('latin1')
      const value = this.unescape(line, eq + 1, end, 'xattr value')
      if (key.includes('\0')) throw new LineError(`NUL byte in xattr key ${q(key)}`)
      if (key.length === 0) throw new LineError('empty xattr key')
      if (key.length > Limits.xattrNameMax) {
        throw new LineError(`xattr key of ${key.length} bytes is longer than ${Limits.xattrNameMax}`)
      }
      if (value.length > Limits.xattrValueMax) {
        throw new LineError(
          `value of xattr ${q(key, 60)} is ${value.length} bytes, at most ${Limits.xattrValueMax} allowed`,
        )
      }

      space = putXattr(xattrs, space, {key, value}, Limits.externalXattrMax)
      if (space < 0) {
        throw new LineError(
          `xattrs need more than ${Limits.externalXattrMax} bytes of space (at ${q(key, 60)})`,
        )
      }

      pos = end + 1
    }
  }

  private resolveHardlinks(): void {
    const root = this.root!
    for (const f of this.fixups) {
      const target = lookupPath(root, f.targetPath)
      if (target === 'dotdot')
        throw this.error(`invalid . or .. in hardlink target ${q(f.targetPath)}`, f.line)
      if (!target) throw this.error(`hardlink target ${q(f.targetPath)} not found`, f.line)
      if (target === f.node) throw this.error(`hardlink ${q(f.targetPath)} points to itself`, f.line)
      // Like upstream, the target's nlink is left as its own line gave it.
      f.node.linkTo = target
    }

    // Follow every chain once: refuse cycles and links that end at a directory.
    const finalOf = new Map<FsNode, FsNode>()
    const visiting = new Set<FsNode>()
    for (const f of this.fixups) {
      const chain: FsNode[] = []
      let n = f.node
      let final: FsNode | undefined
      while (n.linkTo) {
        final = finalOf.get(n)
        if (final) break
        if (visiting.has(n)) throw this.error(`hardlink cycle through ${q(n.path())}`, f.line)
        visiting.add(n)
        chain.push(n)
        n = n.linkTo
      }
      final ??= n
      for (const c of chain) {
        visiting.delete(c)
        finalOf.set(c, final)
      }
      if (final.isDir()) throw this.error(`hardlink ${q(f.node.path())} points to a directory`, f.line)
    }
  }

  private unescape(line: Buffer, start: number, end: number, what: string): Buffer {
    try {
      return unescapeBytes(line, start, end)
    } catch (err) {
      if (err instanceof EscapeError) throw new LineError(`bad escape in ${what}: ${err.message}`)
      throw err
    }
  }

  private field(line: Buffer, i: number, what: string): Buffer {
    return this.unescape(line, this.starts[i]!, this.ends[i]!, what)
  }

  /** A field where a lone '-' means "absent". */
  private optionalField(line: Buffer, i: number, what: string): Buffer | null {
    const s = this.starts[i]!
    if (this.ends[i]! - s === 1 && line[s] === DASH) return null
    return this.field(line, i, what)
  }

  /** Whether `line[start, end)` holds no backslash (the line as a whole holds no NUL). */
  private isPlain(line: Buffer, start: number, end: number): boolean {
    if (end <= this.firstEscape) return true
    for (let i = Math.max(start, this.firstEscape); i < end; i++) if (line[i] === BACKSLASH) return false
    return true
  }

  /** Byte-string fields are C strings upstream; an escaped NUL would silently cut them short. */
  private byteStringField(line: Buffer, i: number, what: string): string {
    const start = this.starts[i]!
    const end = this.ends[i]!
    if (this.isPlain(line, start, end)) return text(line, start, end)
    return noNul(this.field(line, i, what).toString('latin1'), what)
  }

  /** DIGEST when it is 64 plain hex digits (nearly always), decoded without a string; else null. */
  private hexDigest(line: Buffer): Buffer | null {
    const start = this.starts[F.digest]!
    if (this.ends[F.digest]! - start !== 64 || !this.isPlain(line, start, start + 64)) return null
    const out = Buffer.allocUnsafe(32)
    // A table lookup per digit; an invalid digit's -1 makes the OR of all of them negative.
    let bad = 0
    for (let i = 0, j = start; i < 32; i++, j += 2) {
      const hi = HEX_VALUE[line[j]!]!
      const lo = HEX_VALUE[line[j + 1]!]!
      bad |= hi | lo
      out[i] = (hi << 4) | lo
    }
    return bad < 0 ? null : out
  }

  private optionalByteStringField(line: Buffer, i: number, what: string): string | null {
    const s = this.starts[i]!
    if (this.ends[i]! - s === 1 && line[s] === DASH) return null
    // Straight from the line's bytes when plain: no intermediate Buffer per payload.
    return this.byteStringField(line, i, what)
  }

  private u32Field(line: Buffer, i: number, what: string): number {
    const v = parseUnsigned(line, this.starts[i]!, this.ends[i]!, 10, what)
    if (v > U32_MAX) throw new LineError(`${what} ${v} out of range`)
    return Number(v)
  }
}

/** The value of each byte as a hex digit, -1 for a byte that is not one. */
const HEX_VALUE = new Int8Array(256).fill(-1)
for (let c = 0; c < 10; c++) HEX_VALUE[0x30 + c] = c
for (let c = 0; c < 6; c++) HEX_VALUE[0x61 + c] = HEX_VALUE[0x41 + c] = 10 + c

function toBuffer(chunk: Buffer | Uint8Array | string): Uint8Array {
  return typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk
}

/**
 * Parse a composefs dump into a tree and return its root. A string is taken as UTF-8 text; for
 * exact bytes pass a Buffer or a stream of Buffers (e.g. fs.createReadStream, zlib, stdin).
 */
export async function parseDump(input: DumpInput, opts: ParseDumpOptions = {}): Promise<FsNode> {
  const parser = new DumpParser(opts)
  if (typeof input === 'string' || input instanceof Uint8Array) {
    parser.feed(toBuffer(input))
  } else {
    for await (const chunk of input) parser.feed(toBuffer(chunk))
  }
  return parser.finish()
}

/** Synchronous form of parseDump for input already in memory. */
export function parseDumpSync(input: Buffer | Uint8Array | string, opts: ParseDumpOptions = {}): FsNode {
  const parser = new DumpParser(opts)
  parser.feed(toBuffer(input))
  return parser.finish()
}
