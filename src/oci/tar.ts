// A streaming tar reader for container image layers: ustar headers, PAX extended headers
// (`x` and `g`: long names, ns mtimes, large sizes and ids, SCHILY.xattr.*) and GNU long
// names (`L`/`K`).
//
// Why not node-tar: its Parser decodes names as UTF-8 strings, so a name that is not UTF-8
// (Linux names are bytes; the directory scanner keeps them exact) would come out changed and
// the image would differ from a build of the unpacked tree. It also pushes entries as events;
// here the importer pulls entries and their data with `for await`, so back-pressure (waiting
// for an object write) needs no extra machinery. The format is small: one 512-byte header
// decoder, a PAX record parser and a pull loop.
//
// Names, link targets and xattr keys are byte strings (latin1, as in src/tree/node.ts).
// Anything the format allows but an image cannot hold (sparse files, multi-volume parts) is
// refused rather than guessed.

import {InvalidInputError} from '../errors.js'

export const BLOCK = 512

/** A PAX or GNU long-name header larger than this is refused (node-tar's maxMetaEntrySize). */
export const MAX_META_ENTRY = 1 << 20

export const TarType = {
  file: '0',
  oldFile: '\0',
  contiguous: '7',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
  paxNext: 'x',
  paxGlobal: 'g',
  gnuLongName: 'L',
  gnuLongLink: 'K',
} as const

export interface TarHeader {
  name: string
  mode: number
  uid: number
  gid: number
  size: number
  mtime: number
  type: string
  linkname: string
  devmajor: number
  devminor: number
}

export interface TarEntry extends Omit<TarHeader, 'mtime'> {
  mtimeSec: number
  mtimeNsec: number
  xattrs: {key: string; value: Buffer}[]
}

const latin1 = (b: Buffer, off: number, len: number): string => {
  let end = off
  while (end < off + len && b[end] !== 0) end++
  return b.toString('latin1', off, end)
}

/** An octal field (NUL/space padded), or base-256 when the high bit of the first byte is set. */
function numeric(b: Buffer, off: number, len: number, what: string): number {
  if (b[off]! & 0x80) {
    if (b[off] === 0xff) throw new InvalidInputError(`tar: negative ${what}`)
    let v = BigInt(b[off]! & 0x7f)
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(b[off + i]!)
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidInputError(`tar: ${what} too large`)
    return Number(v)
  }
  const s = latin1(b, off, len).trim()
  if (s === '') return 0
  if (!/^[0-7]+$/.test(s)) throw new InvalidInputError(`tar: bad ${what} field "${s}"`)
  const v = parseInt(s, 8)
  if (!Number.isSafeInteger(v)) throw new InvalidInputError(`tar: ${what} too large`)
  return v
}

/** Decodes one header block; null for an all-zero block (the end-of-archive marker). */
export function decodeHeader(b: Buffer): TarHeader | null {
  if (b.length !== BLOCK) throw new InvalidInputError('tar: truncated header')
  let sum = 0
  let zero = true
  for (let i = 0; i < BLOCK; i++) {
    const c = i >= 148 && i < 156 ? 0x20 : b[i]!
    sum += c
    if (b[i] !== 0) zero = false
  }
  if (zero) return null
  if (numeric(b, 148, 8, 'checksum') !== sum) throw new InvalidInputError('tar: header checksum mismatch')
  let name = latin1(b, 0, 100)
  // ustar (and GNU "ustar  ") keep a path prefix at 345.
  if (
    b.toString('latin1', 257, 262) === 'ustar' &&
    b[345] !== 0 &&
    b.toString('latin1', 257, 265) !== 'ustar  \0'
  )
    name = latin1(b, 345, 155) + '/' + name
  return {
    name,
    mode: numeric(b, 100, 8, 'mode'),
    uid: numeric(b, 108, 8, 'uid'),
    gid: numeric(b, 116, 8, 'gid'),
    size: numeric(b, 124, 12, 'size'),
    mtime: numeric(b, 136, 12, 'mtime'),
    type: String.fromCharCode(b[156]!),
    linkname: latin1(b, 157, 100),
    devmajor: numeric(b, 329, 8, 'devmajor'),
    devminor: numeric(b, 337, 8, 'devminor'),
  }
}

/** Parses PAX records ("LEN key=value\n") into key → raw value bytes. */
export function parsePax(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  let off = 0
  while (off < body.length) {
    if (body[off] === 0) break // NUL padding after the last record
    const sp = body.indexOf(0x20, off)
    const len = sp < 0 ? NaN : Number(body.toString('latin1', off, sp))
    if (
      !Number.isSafeInteger(len) ||
      len <= sp - off + 1 ||
      off + len > body.length ||
      body[off + len - 1] !== 0x0a
    )
      throw new InvalidInputError('tar: malformed PAX record')
    const rec = body.subarray(sp + 1, off + len - 1)
    const eq = rec.indexOf(0x3d)
    if (eq <= 0) throw new InvalidInputError('tar: malformed PAX record')
    out.set(rec.toString('latin1', 0, eq), Buffer.from(rec.subarray(eq + 1)))
    off += len
  }
  return out
}

/** "1700000000.123456789" (may be negative) → seconds and nanoseconds, rounding towards -inf. */
export function paxTime(v: string): [number, number] {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(v)
  if (!m) throw new InvalidInputError(`tar: bad PAX time "${v}"`)
  const frac = ((m[3] ?? '') + '000000000').slice(0, 9)
  let ns = BigInt(m[2]!) * 1_000_000_000n + BigInt(frac)
  if (m[1]) ns = -ns
  let sec = ns / 1_000_000_000n
  let nsec = ns % 1_000_000_000n
  if (nsec < 0n) {
    nsec += 1_000_000_000n
    sec -= 1n
  }
  if (sec > BigInt(Number.MAX_SAFE_INTEGER) || -sec > BigInt(Number.MAX_SAFE_INTEGER))
    throw new InvalidInputError(`tar: PAX time out of range`)
  return [Number(sec), Number(nsec)]
}

const paxInt = (v: Buffer, what: string): number => {
  const s = v.toString('latin1')
  if (!/^\d+$/.test(s) || !Number.isSafeInteger(Number(s)))
    throw new InvalidInputError(`tar: bad PAX ${what}`)
  return Number(s)
}

/** Applies PAX records over a header (later wins: per-entry records after global ones). */
function applyPax(h: TarHeader, entry: TarEntry, pax: Map<string, Buffer>): void {
  for (const [key, v] of pax) {
    if (key === 'path') entry.name = v.toString('latin1')
    else if (key === 'linkpath') entry.linkname = v.toString('latin1')
    else if (key === 'size') entry.size = paxInt(v, 'size')
    else if (key === 'uid') entry.uid = paxInt(v, 'uid')
    else if (key === 'gid') entry.gid = paxInt(v, 'gid')
    else if (key === 'mtime') [entry.mtimeSec, entry.mtimeNsec] = paxTime(v.toString('latin1'))
    else if (key.startsWith('SCHILY.xattr.')) setXattr(entry, key.slice('SCHILY.xattr.'.length), v)
    else if (key.startsWith('LIBARCHIVE.xattr.'))
      setXattr(
        entry,
        Buffer.from(decodeURIComponent(key.slice('LIBARCHIVE.xattr.'.length)), 'utf8').toString('latin1'),
        Buffer.from(v.toString('latin1'), 'base64'),
      )
    else if (key.startsWith('GNU.sparse.'))
      throw new InvalidInputError(`tar: ${h.name}: sparse files are not supported`)
  }
}

function setXattr(entry: TarEntry, key: string, value: Buffer): void {
  const i = entry.xattrs.findIndex((x) => x.key === key)
  if (i >= 0) entry.xattrs[i] = {key, value}
  else entry.xattrs.push({key, value})
}

/** Pulls exact byte counts out of an async stream of chunks. */
export class ByteReader {
  private chunk: Buffer = Buffer.alloc(0)
  private off = 0
  private readonly it: AsyncIterator<Buffer>
  /** Bytes handed out (or skipped) so far. */
  position = 0

  constructor(src: AsyncIterable<Buffer>) {
    this.it = src[Symbol.asyncIterator]()
  }

  private async fill(): Promise<boolean> {
    while (this.off >= this.chunk.length) {
      const r = await this.it.next()
      if (r.done) return false
      this.chunk = r.value
      this.off = 0
    }
    return true
  }

  /** Exactly n bytes (copied), or null at a clean end of stream; throws on a truncated read. */
  async read(n: number): Promise<Buffer | null> {
    const out = Buffer.allocUnsafe(n)
    let got = 0
    while (got < n) {
      if (!(await this.fill())) {
        if (got === 0) return null
        throw new InvalidInputError('tar: archive truncated')
      }
      const take = Math.min(n - got, this.chunk.length - this.off)
      this.chunk.copy(out, got, this.off, this.off + take)
      this.off += take
      got += take
    }
    this.position += n
    return out
  }

  /** The next n bytes as a series of views (valid until the next call). */
  async *chunks(n: number): AsyncGenerator<Buffer> {
    let left = n
    while (left > 0) {
      if (!(await this.fill())) throw new InvalidInputError('tar: archive truncated')
      const take = Math.min(left, this.chunk.length - this.off)
      const view = this.chunk.subarray(this.off, this.off + take)
      this.off += take
      left -= take
      this.position += take
      yield view
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.chunks(n));
  }

  /** Stops reading early: ends the source (closing whatever stream it reads). */
  async close(): Promise<void> {
    await this.it.return?.().catch(() => undefined)
  }

  /** Reads what is left of the stream (so a hash over all of it completes). */
  async drain(): Promise<void> {
    while (await this.fill()) {
      this.position += this.chunk.length - this.off
      this.off = this.chunk.length
    }
  }
}

const pad = (n: number): number => (BLOCK - (n % BLOCK)) % BLOCK

async function metaBody(r: ByteReader, h: TarHeader): Promise<Buffer> {
  if (h.size > MAX_META_ENTRY)
    throw new InvalidInputError(`tar: extended header of ${h.size} bytes (limit ${MAX_META_ENTRY})`)
  const body = (await r.read(h.size)) ?? Buffer.alloc(0)
  await r.skip(pad(h.size))
  return body
}

/**
 * The entries of a tar stream, metadata headers folded in. The consumer reads an entry's data
 * with `data()` before asking for the next entry (unread data is skipped). `position` on the
 * reader is where the entry's data starts in the uncompressed stream.
 */
export async function* tarEntries(
  r: ByteReader,
): AsyncGenerator<{entry: TarEntry; data: () => AsyncGenerator<Buffer>}> {
  let global = new Map<string, Buffer>()
  let pax: Map<string, Buffer> | null = null
  let longName: string | null = null
  let longLink: string | null = null
  for (;;) {
    const block = await r.read(BLOCK)
    if (!block) return // no end marker: accepted, as GNU tar does
    const h = decodeHeader(block)
    if (!h) {
      // End of archive; what follows (more zero blocks, registry padding) is not ours to read.
      return
    }
    if (h.type === TarType.paxNext || h.type === TarType.paxGlobal) {
      const recs = parsePax(await metaBody(r, h))
      if (h.type === TarType.paxGlobal) global = new Map([...global, ...recs])
      else pax = recs
      continue
    }
    if (h.type === TarType.gnuLongName || h.type === TarType.gnuLongLink) {
      const s = latin1(await metaBody(r, h), 0, h.size)
      if (h.type === TarType.gnuLongName) longName = s
      else longLink = s
      continue
    }
    const entry: TarEntry = {...h, mtimeSec: h.mtime, mtimeNsec: 0, xattrs: []}
    if (longName !== null) entry.name = longName
    if (longLink !== null) entry.linkname = longLink
    applyPax(h, entry, global)
    if (pax) applyPax(h, entry, pax)
    pax = null
    longName = null
    longLink = null
    // Only regular files carry data: like Go's archive/tar (what container tools use), the size
    // field of a link, directory, device or FIFO header is ignored and no data is read for it.
    const hasData =
      entry.type === TarType.file || entry.type === TarType.oldFile || entry.type === TarType.contiguous
    const size = hasData ? entry.size : 0
    entry.size = size
    let consumed = false
    const data = async function* (): AsyncGenerator<Buffer> {
      if (consumed) throw new Error('tar entry data read twice')
      consumed = true
      yield* r.chunks(size)
    }
    yield {entry, data}
    if (!consumed) await r.skip(size)
    await r.skip(pad(size))
  }
}

/** Where one member's data lies in an archive file (for archives read in place). */
export interface TarMember {
  name: string
  offset: number
  size: number
}

/** Lists an archive's regular-file members by reading only headers (positional reads). */
export async function indexTarFile(
  read: (pos: number, len: number) => Promise<Buffer>,
  fileSize: number,
): Promise<TarMember[]> {
  const out: TarMember[] = []
  let pos = 0
  let pax: Map<string, Buffer> | null = null
  let longName: string | null = null
  while (pos + BLOCK <= fileSize) {
    const h = decodeHeader(await read(pos, BLOCK))
    if (!h) break
    pos += BLOCK
    let size = h.size
    if (h.type === TarType.paxNext || h.type === TarType.gnuLongName) {
      if (size > MAX_META_ENTRY) throw new InvalidInputError(`tar: extended header of ${size} bytes`)
      const body = await read(pos, size)
      if (h.type === TarType.paxNext) pax = parsePax(body)
      else longName = latin1(body, 0, size)
    } else if (h.type !== TarType.paxGlobal && h.type !== TarType.gnuLongLink) {
      let name = longName ?? h.name
      const p = pax?.get('path')
      if (p) name = p.toString('latin1')
      const ps = pax?.get('size')
      if (ps) size = paxInt(ps, 'size')
      if (h.type === TarType.file || h.type === TarType.oldFile || h.type === TarType.contiguous) {
        if (pos + size > fileSize) throw new InvalidInputError('tar: archive truncated')
        out.push({name: name.replace(/^(\.\/)+/, ''), offset: pos, size})
      } else size = 0
      pax = null
      longName = null
    }
    pos += size + pad(size)
  }
  return out
}
