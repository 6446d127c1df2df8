// The writer's xattr layout, as upstream mkcomposefs does it: which xattrs go to the shared
// area (and in what order), how big an inode's inline xattrs are, and each inode's name filter.
// An inode's xattrs are either its list in ImageTree.xattrs or, for most external files, just
// the metacopy/redirect pair, which is read from the node (digest, payload) where it is needed
// instead of being stored per file.

import {
  OverlayXattr,
  WRITER_XATTR_PREFIXES,
  XATTR_ENTRY_SIZE,
  XATTR_FILTER_DEFAULT,
  XATTR_FILTER_SEED,
  XATTR_LONG_PREFIX,
} from './layout.js'
import {External, ImageTree, METACOPY_HEADER_SIZE, metacopyText, metacopyValue, WXattr} from './prepare.js'
import type {FsNode} from '../../tree/node.js'
import {xxh32} from './xxhash.js'

/** Keys seen so far and their prefix index and suffix: a tree uses few distinct keys. */
const indexCache = new Map<string, [index: number, suffix: string]>()
/** Bound on the cache, should a tree have many distinct keys. */
const INDEX_CACHE_MAX = 4096

export function xattrIndex(key: string): [index: number, suffix: string] {
  let e = indexCache.get(key)
  if (e) return e
  e = [0, key]
  for (const [prefix, index] of WRITER_XATTR_PREFIXES) {
    if (key.startsWith(prefix)) {
      e = [index, key.slice(prefix.length)]
      break
    }
  }
  if (indexCache.size < INDEX_CACHE_MAX) indexCache.set(key, e)
  return e
}

const METACOPY = OverlayXattr.metacopy
const REDIRECT = OverlayXattr.redirect

export function xattrEntrySize(x: WXattr): number {
  return entrySize(x.key, x.value.length)
}

function entrySize(key: string, valueLength: number): number {
  return Math.ceil((XATTR_ENTRY_SIZE + xattrIndex(key)[1].length + valueLength) / 4) * 4
}

/** Length of the metacopy value of a node with this digest (metacopyValue). */
export const metacopyLength = (digest: Buffer | null): number =>
  digest ? METACOPY_HEADER_SIZE + digest.length : 0

interface XattrUse {
  x: WXattr
  count: number
  offset: number
}

/** A shared-area candidate: a generic xattr, or a derived group's (`rep` its first inode). */
interface Candidate {
  x: WXattr
  use: XattrUse | null
  rep: number
  offsets: Int32Array | null
}

/**
 * Groups of inodes with equal derived metacopy (equal digests) or redirect (equal payloads)
 * values, found without making the values: `rep[i]` is the first inode of inode i's group (-1
 * when it has none), `count[rep]` its size, `offset[rep]` its place in the shared area or -1.
 */
class DerivedGroups {
  readonly rep: Int32Array
  readonly count: Int32Array
  readonly offset: Int32Array
  constructor(size: number) {
    this.rep = new Int32Array(size).fill(-1)
    this.count = new Int32Array(size)
    this.offset = new Int32Array(size).fill(-1)
  }
  add(i: number, rep: number): void {
    this.rep[i] = rep
    this.count[rep]!++
  }
  /** The shared-area offset of inode i's value, or -1. */
  offsetOf(i: number): number {
    return this.offset[this.rep[i]!]!
  }
}

/** Where every inode's xattrs go: the shared area, and which of them are stored there. */
export class XattrLayout {
  /** The shared area's xattrs, in order. */
  readonly shared: WXattr[] = []
  /** Offsets in the shared area of the derived metacopy and redirect of each inode, or -1. */
  readonly metacopyOffset: Int32Array
  readonly redirectOffset: Int32Array
  /** How many of each inode's xattrs are shared (at most 128), and the size of its inline ones. */
  readonly nShared: Uint8Array
  readonly unsharedSize: Int32Array

  /** Xattrs used by more than one inode go to the shared area (at most 128 references per inode). */
  constructor(readonly tree: ImageTree) {
    const {nodes, xattrs, external} = tree
    const count = nodes.length
    this.metacopyOffset = new Int32Array(count).fill(-1)
    this.redirectOffset = new Int32Array(count).fill(-1)
    this.nShared = new Uint8Array(count)
    this.unsharedSize = new Int32Array(count)
    // Every metacopy and redirect in the tree is composefs's own, made from its inode's digest
    // and payload (prepare.ts escapes the tree's trusted.overlay.* xattrs): they are grouped by
    // those, without a string or Buffer per file. Other xattrs are counted by key, then by value
    // bytes: a key has few distinct values or all-unique ones.
    const metacopy = new DerivedGroups(count)
    const redirect = new DerivedGroups(count)
    const metacopyGroup = digestGroups(nodes)
    const redirectGroup = payloadGroups(nodes)
    const byKey = new Map<string, Map<string, XattrUse>>()
    const uses: XattrUse[] = []
    for (let i = 0; i < count; i++) {
      const list = xattrs[i]
      if (list) {
        for (const x of list) {
          if (x.key === METACOPY) metacopy.add(i, metacopyGroup(i))
          else if (x.key === REDIRECT) redirect.add(i, redirectGroup(i))
          else {
            let values = byKey.get(x.key)
            if (!values) byKey.set(x.key, (values = new Map()))
            const v = x.text ?? x.value.toString('latin1')
            let e = values.get(v)
            if (e) e.count++
            else values.set(v, (e = {x, count: 1, offset: -1}))
            uses.push(e)
          }
        }
      } else if (external[i] !== External.none) {
        metacopy.add(i, metacopyGroup(i))
        if (external[i] === External.redirect) redirect.add(i, redirectGroup(i))
      }
    }
    const candidates: Candidate[] = []
    for (const values of byKey.values()) {
      for (const e of values.values()) {
        if (e.count > 1) candidates.push({x: e.x, use: e, rep: -1, offsets: null})
      }
    }
    for (let i = 0; i < count; i++) {
      if (metacopy.rep[i] === i && metacopy.count[i]! > 1) {
        const x = {key: METACOPY, value: metacopyValue(nodes[i]!.digest), sharedOffset: -1, text: null}
        candidates.push({x, use: null, rep: i, offsets: metacopy.offset})
      }
      if (redirect.rep[i] === i && redirect.count[i]! > 1) {
        const value = Buffer.from('/' + nodes[i]!.payload!, 'latin1')
        candidates.push({
          x: {key: REDIRECT, value, sharedOffset: -1, text: null},
          use: null,
          rep: i,
          offsets: redirect.offset,
        })
      }
    }
    // Canonical order of the shared area: by key, then value length, then value, all descending.
    // Only xattrs used more than once are shared, so only they are sorted (most of a tree's
    // xattrs, the per-file redirect and metacopy, are unique: sorting them all was most of the
    // writer's time on a large tree).
    const sorted = candidates.sort((a, b) => {
      if (a.x.key !== b.x.key) return a.x.key < b.x.key ? 1 : -1
      if (a.x.value.length !== b.x.value.length) return b.x.value.length - a.x.value.length
      return Buffer.compare(b.x.value, a.x.value)
    })
    let offset = 0
    for (const c of sorted) {
      if (c.use) c.use.offset = offset
      else c.offsets![c.rep] = offset
      this.shared.push(c.x)
      offset += xattrEntrySize(c.x)
    }
    // Last pass: which of each inode's xattrs are shared, and the size of the others.
    const {nShared, unsharedSize} = this
    let u = 0
    for (let i = 0; i < count; i++) {
      const list = xattrs[i]
      if (list) {
        let shared = 0
        let unshared = 0
        for (const x of list) {
          const o =
            x.key === METACOPY
              ? metacopy.offsetOf(i)
              : x.key === REDIRECT
                ? redirect.offsetOf(i)
                : uses[u++]!.offset
          if (o >= 0 && shared < XATTR_LONG_PREFIX) {
            x.sharedOffset = o
            shared++
          } else {
            x.sharedOffset = -1
            unshared += xattrEntrySize(x)
          }
        }
        nShared[i] = shared
        unsharedSize[i] = unshared
      } else if (external[i] !== External.none) {
        let shared = 0
        let unshared = 0
        const mc = metacopy.offsetOf(i)
        this.metacopyOffset[i] = mc
        if (mc >= 0) shared++
        else unshared += entrySize(METACOPY, metacopyLength(nodes[i]!.digest))
        if (external[i] === External.redirect) {
          const rd = redirect.offsetOf(i)
          this.redirectOffset[i] = rd
          if (rd >= 0) shared++
          else unshared += entrySize(REDIRECT, 1 + nodes[i]!.payload!.length)
        }
        nShared[i] = shared
        unsharedSize[i] = unshared
      }
    }
  }

  /** The size of the shared area. */
  sharedSize(): number {
    let size = 0
    for (const x of this.shared) size += xattrEntrySize(x)
    return size
  }

  /** The xattr name filter of inode `i`. */
  filter(i: number): number {
    let bits = 0
    const list = this.tree.xattrs[i]
    if (list) {
      for (const x of list) bits |= 1 << filterBit(x.key)
    } else if (this.tree.external[i] !== External.none) {
      bits = this.tree.external[i] === External.redirect ? REDIRECT_BITS : METACOPY_BITS
    }
    return (XATTR_FILTER_DEFAULT & ~bits) >>> 0
  }
}

/** Per process, so that no input can be made whose keys all land together in FirstByKey. */
const KEY_SEED = (Math.random() * 2 ** 32) | 1

/**
 * The first inode seen with each 32-bit key: an open-addressing table in two typed arrays for
 * up to `capacity` keys. A Map of as many entries took a MiB of heap, and its growth as much again.
 */
class FirstByKey {
  private readonly keys: Int32Array
  /** 1 + the first inode of the key in the same slot, 0 for an empty slot. */
  private readonly firsts: Int32Array
  private readonly shift: number
  constructor(capacity: number) {
    const bits = Math.max(4, 33 - Math.clz32(capacity))
    this.keys = new Int32Array(1 << bits)
    this.firsts = new Int32Array(1 << bits)
    this.shift = 32 - bits
  }

  /** The first inode recorded with `key`; else `i`, now recorded as its first. */
  firstOr(key: number, i: number): number {
    const mask = this.keys.length - 1
    for (let s = Math.imul(key, KEY_SEED) >>> this.shift; ; s = (s + 1) & mask) {
      const f = this.firsts[s]!
      if (f === 0) {
        this.keys[s] = key
        this.firsts[s] = i + 1
        return i
      }
      if (this.keys[s] === key) return f - 1
    }
  }
}

/**
 * For inode i, the first inode with an equal metacopy value, i.e. an equal digest: looked up by
 * the digest's first 32 bits (no string per file), by the value's bytes after a collision or
 * for a digest too short to take bits from.
 */
function digestGroups(nodes: FsNode[]): (i: number) => number {
  const byBits = new FirstByKey(nodes.length)
  const byText = new Map<string, number>()
  let noDigest = -1
  return (i) => {
    const d = nodes[i]!.digest
    if (!d) {
      if (noDigest < 0) noDigest = i
      return noDigest
    }
    if (d.length >= 4) {
      const first = byBits.firstOr(d[0]! | (d[1]! << 8) | (d[2]! << 16) | (d[3]! << 24), i)
      if (first === i || nodes[first]!.digest!.equals(d)) return first
    }
    const text = metacopyText(d)
    let first = byText.get(text)
    if (first === undefined) byText.set(text, (first = i))
    return first
  }
}

/**
 * For inode i, the first inode with an equal payload (redirect value): looked up by a hash of
 * the payload, by the payload itself after a collision.
 */
function payloadGroups(nodes: FsNode[]): (i: number) => number {
  const byHash = new FirstByKey(nodes.length)
  const byText = new Map<string, number>()
  return (i) => {
    const payload = nodes[i]!.payload!
    let h = KEY_SEED
    for (let k = 0; k < payload.length; k++) h = Math.imul(h ^ payload.charCodeAt(k), 0x01000193)
    const first = byHash.firstOr(h, i)
    if (first === i || nodes[first]!.payload === payload) return first
    let other = byText.get(payload)
    if (other === undefined) byText.set(payload, (other = i))
    return other
  }
}

/** Bloom filter bit of each xattr name; a tree uses few distinct names, so they are cached. */
const filterBits = new Map<string, number>()
/** The filter bits of the derived metacopy alone and with the redirect (most inodes' xattrs). */
const METACOPY_BITS = 1 << filterBit(METACOPY)
const REDIRECT_BITS = METACOPY_BITS | (1 << filterBit(REDIRECT))

function filterBit(key: string): number {
  let bit = filterBits.get(key)
  if (bit === undefined) {
    const [index, suffix] = xattrIndex(key)
    bit = xxh32(Buffer.from(suffix, 'latin1'), XATTR_FILTER_SEED + index) & 31
    filterBits.set(key, bit)
  }
  return bit
}
