// Upstream's per-inode xattr budget (lcfs_node_set_xattr / lcfs_node_unset_xattr), in one
// place for the three parts that must agree with it: the dump parser, the image writer (which
// adds composefs's own overlay xattrs) and the image reader. The constants are in layout.ts.

import {XattrSpace} from './layout.js'

interface KeyValue {
  key: string
  value: Uint8Array
}

/** The space one xattr adds to an inode that already has others. */
export function xattrEntrySpace(key: string, valueLength: number): number {
  return XattrSpace.perEntry + key.length + valueLength
}

/** The estimated xattr space of a whole list (0 for none). */
export function xattrSpace(xattrs: readonly KeyValue[]): number {
  if (xattrs.length === 0) return 0
  let space: number = XattrSpace.header
  for (const x of xattrs) space += xattrEntrySpace(x.key, x.value.length)
  return space
}

/**
 * Sets `entry` in `list` the way upstream does, given the list's current estimated space
 * `used`: an xattr with the same key is removed first by moving the last one into its slot
 * (so the order matches upstream's), then `entry` is appended. Returns the new estimate, or -1
 * (and `list` without the old value of the key) when the result would exceed `max`.
 */
export function putXattr<T extends KeyValue>(list: T[], used: number, entry: T, max: number): number {
  const i = list.findIndex((x) => x.key === entry.key)
  if (i >= 0) {
    const old = list[i]!
    const last = list.pop()!
    if (i < list.length) list[i] = last
    used = list.length > 0 ? used - xattrEntrySpace(old.key, old.value.length) : 0
  }
  let space = xattrEntrySpace(entry.key, entry.value.length)
  if (list.length === 0) space += XattrSpace.header
  if (used + space > max) return -1
  list.push(entry)
  return used + space
}
