// The writer's xattr layout, as upstream mkcomposefs does it: which xattrs go to the shared
// area (and in what order), how big an inode's inline xattrs are, and each inode's name filter.

import {
  WRITER_XATTR_PREFIXES,
  XATTR_ENTRY_SIZE,
  XATTR_FILTER_DEFAULT,
  XATTR_FILTER_SEED,
  XATTR_LONG_PREFIX,
} from './layout.js'
import type {WNode, WXattr} from './prepare.js'
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

export function xattrEntrySize(x: WXattr): number {
  return Math.ceil((XATTR_ENTRY_SIZE + xattrIndex(x.key)[1].length + x.value.length) / 4) * 4
}

interface XattrUse {
  x: WXattr
  count: number
  offset: number
}

/** Xattrs used by more than one inode go to the shared area (at most 128 references per inode). */
export function shareXattrs(nodes: WNode[]): WXattr[] {
  // Counted by key, then by value bytes: a key has few distinct values or all-unique ones.
  const byKey = new Map<string, Map<string, XattrUse>>()
  const uses: XattrUse[] = []
  for (const n of nodes) {
    for (const x of n.xattrs) {
      let values = byKey.get(x.key)
      if (!values) byKey.set(x.key, (values = new Map()))
      const v = x.text ?? x.value.toString('latin1')
      let e = values.get(v)
      if (e) e.count++
      else values.set(v, (e = {x, count: 1, offset: -1}))
      uses.push(e)
    }
  }
  const candidates: XattrUse[] = []
  for (const values of byKey.values()) for (const e of values.values()) if (e.count > 1) candidates.push(e)
  // Canonical order of the shared area: by key, then value length, then value, all descending.
  // Only xattrs used more than once are shared, so only they are sorted (most of a tree's
  // xattrs, the per-file redirect and metacopy, are unique: sorting them all was most of the
  // writer's time on a large tree).
  const sorted = candidates.sort((a, b) => {
    if (a.x.key !== b.x.key) return a.x.key < b.x.key ? 1 : -1
    if (a.x.value.length !== b.x.value.length) return b.x.value.length - a.x.value.length
    return Buffer.compare(b.x.value, a.x.value)
  })
  const shared: WXattr[] = []
  let offset = 0
  for (const e of sorted) {
    e.offset = offset
    shared.push(e.x)
    offset += xattrEntrySize(e.x)
  }
  let i = 0
  for (const n of nodes) {
    let nShared = 0
    for (const x of n.xattrs) {
      const e = uses[i++]!
      if (e.offset >= 0 && nShared < XATTR_LONG_PREFIX) {
        x.sharedOffset = e.offset
        nShared++
      } else {
        x.sharedOffset = -1
      }
    }
  }
  return shared
}

export function xattrCounts(n: WNode): {nShared: number; unsharedSize: number} {
  let nShared = 0
  let unsharedSize = 0
  for (const x of n.xattrs) {
    if (x.sharedOffset >= 0) nShared++
    else unsharedSize += xattrEntrySize(x)
  }
  return {nShared, unsharedSize}
}

/** Bloom filter bit of each xattr name; a tree uses few distinct names, so they are cached. */
const filterBits = new Map<string, number>()

export function xattrFilter(n: WNode): number {
  let bits = 0
  for (const x of n.xattrs) {
    let bit = filterBits.get(x.key)
    if (bit === undefined) {
      const [index, suffix] = xattrIndex(x.key)
      bit = xxh32(Buffer.from(suffix, 'latin1'), XATTR_FILTER_SEED + index) & 31
      filterBits.set(x.key, bit)
    }
    bits |= 1 << bit
  }
  return (XATTR_FILTER_DEFAULT & ~bits) >>> 0
}
