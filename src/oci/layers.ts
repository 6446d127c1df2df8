// One layer blob → a list of entries, its file contents stored as they stream past.
//
//   blob bytes ─► sha256 (the descriptor's digest) ─► gunzip (worker thread) | zstd -dc | as is
//              ─► sha256 (the diff ID; gzip: on the worker) + byte budget ─► tar entries
//              ─► regular files > 64 bytes: fs-verity hashed while written to the staging area
//
// Nothing is ever held whole in memory (only files small enough to be inlined) or unpacked to
// disk. The staged objects are committed to the store by the caller only after both digests
// matched, so a layer whose bytes are not the ones its manifest names never adds an object.
//
// Hostile input is refused here, each with one clear error: absolute names and `..`, names
// over NAME_MAX, whiteouts of `.`/`..`, unknown entry types, sizes beyond the format or the
// byte budget, and bombs (the budget counts decompressed bytes as they come out).

import {createHash, type Hash} from 'node:crypto'

import {DigestMismatchError, InvalidInputError} from '../errors.js'
import {Limits} from '../format/erofs/layout.js'
import {NAME_MAX} from '../tree/limits.js'
import type {ObjectStaging} from '../store/objects.js'
import {zstdDecompress} from '../system/zstd.js'
import {S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, type Xattr} from '../tree/node.js'
import {checkXattrs} from '../tree/scan.js'
import {FsVerityHasher} from '../verity/merkle.js'
import {gunzipInWorker} from './gunzip.js'
import {ByteReader, tarEntries, TarType} from './tar.js'

/** Default bound on one layer's decompressed bytes (a bomb stops here); `maxLayerBytes` changes it. */
export const DEFAULT_MAX_LAYER_BYTES = 256 * 2 ** 30
/** Entries per layer (bounds the memory of the entry list and the tree). */
export const MAX_LAYER_ENTRIES = 4_000_000
/** Files up to this size are gathered in memory and staged from there (ObjectStaging.addBuffer). */
export const BUFFERED_FILE_MAX = 1 << 20

export const WHITEOUT_PREFIX = '.wh.'
export const OPAQUE_MARKER = '.wh..wh..opq'

export type EntryKind = 'file' | 'dir' | 'symlink' | 'hardlink' | 'device' | 'fifo' | 'whiteout' | 'opaque'

/** One change a layer makes, as the tree assembly applies it (also what the layer cache keeps). */
export interface LayerEntry {
  /** Normalised path below the root, no leading or trailing "/" ("" is the root). Byte string. */
  path: string
  kind: EntryKind
  /** st_mode: type bits and permissions. */
  mode: number
  uid: number
  gid: number
  mtimeSec: number
  mtimeNsec: number
  size: number
  rdev: number
  /** Symlink target, or the (normalised) path a hardlink names. */
  target?: string
  /** fs-verity digest (hex) of content stored as an object. */
  digest?: string
  /** Content of a file small enough to be inlined. */
  content?: Buffer
  xattrs: Xattr[]
}

export interface LayerSource {
  /** Expected digest of the blob ("sha256:…"), or null when the source names only the diff ID. */
  digest: string | null
  /** Expected blob size, when known. */
  size: number | null
  /** Expected sha256 of the uncompressed tar ("sha256:…"). */
  diffId: string
  open(): Promise<AsyncIterable<Buffer>>
}

export interface ReadLayerOptions {
  /** Where objects go until the layer is verified; null to hash only (no --objects). */
  staging: ObjectStaging | null
  maxLayerBytes?: number
}

/** Linux's makedev as glibc encodes it (what st_rdev holds for the directory scanner). */
export function makedev(major: number, minor: number): number {
  const M = BigInt(major)
  const m = BigInt(minor)
  return Number(((M & 0xfffn) << 8n) | ((M & 0xfffff000n) << 32n) | (m & 0xffn) | ((m & 0xffffff00n) << 12n))
}

/** A tar name → normalised path; refuses what could leave the image's root. */
export function normalizeName(raw: string, what = 'entry'): string {
  if (raw.startsWith('/')) throw new InvalidInputError(`layer: absolute ${what} name "${raw}"`)
  const parts: string[] = []
  for (const p of raw.split('/')) {
    if (p === '' || p === '.') continue
    if (p === '..') throw new InvalidInputError(`layer: ${what} name "${raw}" contains ".."`)
    if (p.length > NAME_MAX)
      throw new InvalidInputError(
        `layer: a name in "${raw.slice(0, 64)}…" is ${p.length} bytes (limit ${NAME_MAX})`,
      )
    parts.push(p)
  }
  const path = parts.join('/')
  if (path.length >= Limits.pathMax) throw new InvalidInputError(`layer: path of ${path.length} bytes`)
  return path
}

function kindOf(type: string, name: string): {kind: EntryKind; fmt: number} {
  switch (type) {
    case TarType.file:
    case TarType.oldFile:
    case TarType.contiguous:
      return {kind: 'file', fmt: S_IFREG}
    case TarType.dir:
      return {kind: 'dir', fmt: S_IFDIR}
    case TarType.symlink:
      return {kind: 'symlink', fmt: S_IFLNK}
    case TarType.hardlink:
      return {kind: 'hardlink', fmt: 0}
    case TarType.char:
      return {kind: 'device', fmt: S_IFCHR}
    case TarType.block:
      return {kind: 'device', fmt: S_IFBLK}
    case TarType.fifo:
      return {kind: 'fifo', fmt: S_IFIFO}
    default:
      throw new InvalidInputError(
        `layer: ${name}: unsupported tar entry type "${type.replace(/\0/g, '\\0')}"`,
      )
  }
}

async function* counted(
  src: AsyncIterable<Buffer>,
  hash: Hash | null,
  count: {n: number},
  limit: number,
): AsyncGenerator<Buffer> {
  for await (const chunk of src) {
    count.n += chunk.length
    if (count.n > limit)
      throw new InvalidInputError(`layer: expands beyond ${limit} bytes (a compression bomb?)`, {limit})
    hash?.update(chunk)
    yield chunk
  }
}

/** The first chunk seen, then the rest: for sniffing the compression from the magic bytes. */
async function peek(src: AsyncIterable<Buffer>): Promise<{first: Buffer; all: AsyncIterable<Buffer>}> {
  const it = src[Symbol.asyncIterator]()
  let first = Buffer.alloc(0)
  const head: Buffer[] = []
  while (first.length < 4) {
    const r = await it.next()
    if (r.done) break
    head.push(r.value)
    first = Buffer.concat(head)
  }
  async function* all(): AsyncGenerator<Buffer> {
    if (first.length) yield first
    for (;;) {
      const r = await it.next()
      if (r.done) return
      yield r.value
    }
  }
  return {first, all: all()}
}

interface Decompressed {
  out: AsyncIterable<Buffer>
  finish: () => Promise<void>
  kill: () => void
  /** sha256 (hex) of `out`, when the decompressor computes it (else the reader hashes). */
  sha256?: () => string
}

function decompress(first: Buffer, src: AsyncIterable<Buffer>): Decompressed {
  if (first[0] === 0x1f && first[1] === 0x8b) {
    const gz = gunzipInWorker(src)
    return {out: gz.output, finish: async () => undefined, kill: gz.kill, sha256: gz.sha256}
  }
  if (first.readUInt32LE(0) === 0xfd2fb528) {
    const z = zstdDecompress(src)
    return {out: z.output, finish: z.finish, kill: z.kill}
  }
  return {out: src, finish: async () => undefined, kill: () => undefined}
}

/**
 * Reads one layer to its end. Returns its entries; throws (leaving the staging area to the
 * caller to abort) on hostile content or a digest that does not match.
 */
export async function readLayer(layer: LayerSource, opts: ReadLayerOptions): Promise<LayerEntry[]> {
  const maxBytes = opts.maxLayerBytes ?? DEFAULT_MAX_LAYER_BYTES
  const blobHash = createHash('sha256')
  const blobCount = {n: 0}
  const raw = counted(await layer.open(), blobHash, blobCount, Number.MAX_SAFE_INTEGER)
  const {first, all} = await peek(raw)
  const dec = decompress(first, all)
  const diffHash = dec.sha256 ? null : createHash('sha256')
  const tarCount = {n: 0}
  const reader = new ByteReader(counted(dec.out, diffHash, tarCount, maxBytes))
  const entries: LayerEntry[] = []
  try {
    for await (const {entry: t, data} of tarEntries(reader)) {
      if (entries.length >= MAX_LAYER_ENTRIES)
        throw new InvalidInputError(`layer: more than ${MAX_LAYER_ENTRIES} entries`)
      const path = normalizeName(t.name)
      const slash = path.lastIndexOf('/')
      const base = path.slice(slash + 1)
      const dir = slash < 0 ? '' : path.slice(0, slash)
      const meta = {uid: t.uid, gid: t.gid, mtimeSec: t.mtimeSec, mtimeNsec: t.mtimeNsec, rdev: 0, xattrs: []}
      if (base.startsWith(WHITEOUT_PREFIX)) {
        if (base === OPAQUE_MARKER) entries.push({path: dir, kind: 'opaque', mode: 0, size: 0, ...meta})
        else if (!base.startsWith(WHITEOUT_PREFIX + WHITEOUT_PREFIX)) {
          const victim = base.slice(WHITEOUT_PREFIX.length)
          if (victim === '' || victim === '.' || victim === '..')
            throw new InvalidInputError(`layer: whiteout "${t.name}" names "${victim}"`)
          entries.push({path: dir ? `${dir}/${victim}` : victim, kind: 'whiteout', mode: 0, size: 0, ...meta})
        }
        // Other ".wh..wh." names are aufs bookkeeping (".wh..wh.plnk"): not files, ignored as Docker does.
        continue
      }
      const {kind, fmt} = kindOf(t.type, t.name)
      checkXattrs(path, t.xattrs)
      const e: LayerEntry = {path, kind, mode: fmt | (t.mode & 0o7777), size: 0, ...meta, xattrs: t.xattrs}
      if (path === '' && kind !== 'dir')
        throw new InvalidInputError(`layer: the root "${t.name}" is not a directory`)
      if (kind === 'symlink' || kind === 'hardlink') {
        if (t.linkname === '') throw new InvalidInputError(`layer: ${t.name}: empty link target`)
        if (kind === 'hardlink') e.target = normalizeName(t.linkname, 'hardlink target')
        else {
          if (t.linkname.length >= Limits.pathMax)
            throw new InvalidInputError(`layer: ${t.name}: symlink target too long`)
          // A symlink's target is data: the tree is never resolved through it (see tree.ts).
          e.target = t.linkname
          e.size = t.linkname.length
        }
      } else if (kind === 'device') e.rdev = makedev(t.devmajor, t.devminor)
      else if (kind === 'file') {
        if (t.size > Limits.maxFileSize || t.size > maxBytes - reader.position)
          throw new InvalidInputError(`layer: ${t.name}: size ${t.size} is beyond what the layer can hold`)
        e.size = t.size
        await storeContent(e, data(), opts.staging)
      }
      entries.push(e)
    }
    // Read to the end so both digests cover every byte (and gzip checks its trailer).
    await reader.drain()
    await dec.finish()
  } catch (err) {
    dec.kill()
    await reader.close()
    throw err
  }
  const blobDigest = `sha256:${blobHash.digest('hex')}`
  if (
    layer.digest !== null &&
    (blobDigest !== layer.digest || (layer.size !== null && blobCount.n !== layer.size))
  )
    throw new DigestMismatchError(
      `layer ${layer.digest}: content has digest ${blobDigest} (${blobCount.n} bytes)`,
    )
  const diffId = `sha256:${dec.sha256 ? dec.sha256() : diffHash!.digest('hex')}`
  if (diffId !== layer.diffId)
    throw new DigestMismatchError(
      `layer ${layer.digest ?? layer.diffId}: uncompressed digest ${diffId} is not its diff ID ${layer.diffId}`,
    )
  return entries
}

/** Small files inline (the scanner's rule), others fs-verity hashed into the staging area. */
async function storeContent(
  e: LayerEntry,
  data: AsyncGenerator<Buffer>,
  staging: ObjectStaging | null,
): Promise<void> {
  if (e.size === 0) {
    for await (const _ of data);
    return
  }
  if (e.size <= Limits.recommendedInlineContentMax) {
    const parts: Buffer[] = []
    for await (const c of data) parts.push(Buffer.from(c))
    e.content = Buffer.concat(parts)
    return
  }
  if (!staging) {
    const h = new FsVerityHasher()
    for await (const c of data) h.update(c)
    e.digest = h.digest().toString('hex')
    return
  }
  if (e.size <= BUFFERED_FILE_MAX) {
    // Small files are gathered and handed to the staging area's writer thread (addBuffer).
    const parts: Buffer[] = []
    for await (const c of data) parts.push(Buffer.from(c))
    e.digest = (await staging.addBuffer(Buffer.concat(parts))).toString('hex')
    return
  }
  const w = await staging.create()
  try {
    for await (const c of data) await w.write(c)
  } catch (err) {
    await w.discard()
    throw err
  }
  e.digest = (await w.end()).toString('hex')
}
