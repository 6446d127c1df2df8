// Describes every entry of a tree on disk (lstat, readlink, getfattr) so two trees, e.g. a
// source tree and the composefs mount of the image built from it, can be compared field by
// field: type, mode, uid, gid, size, mtime (s + ns), nlink of non-directories, symlink
// target, rdev and all xattrs.

import {lstat, readdir, readlink} from 'node:fs/promises'

import {readTreeXattrs} from '../../src/system/xattrs.js'

export interface EntryInfo {
  mode: string
  uid: number
  gid: number
  size: string
  mtime: string
  nlink: string
  target: string | null
  rdev: string
  xattrs: string
}

const S_IFMT = 0o170000n
const S_IFDIR = 0o040000n
const S_IFCHR = 0o020000n
const S_IFBLK = 0o060000n

/** Entries by path relative to the root (byte strings; "" is the root). */
export async function describeTree(root: string): Promise<Map<string, EntryInfo>> {
  const xattrs = await readTreeXattrs(root)
  const out = new Map<string, EntryInfo>()
  const stack: [Buffer, string][] = [[Buffer.from(root), '']]
  while (stack.length) {
    const [path, rel] = stack.pop()!
    const st = await lstat(path, {bigint: true})
    const type = st.mode & S_IFMT
    const isLink = st.isSymbolicLink()
    out.set(rel, {
      mode: st.mode.toString(8),
      uid: Number(st.uid),
      gid: Number(st.gid),
      // Directory sizes and link counts depend on the filesystem, not on the tree.
      size: type === S_IFDIR ? '-' : st.size.toString(),
      mtime: `${st.mtimeNs / 1_000_000_000n}.${(st.mtimeNs % 1_000_000_000n).toString().padStart(9, '0')}`,
      nlink: type === S_IFDIR ? '-' : st.nlink.toString(),
      target: isLink ? (await readlink(path, {encoding: 'buffer'})).toString('latin1') : null,
      rdev: type === S_IFCHR || type === S_IFBLK ? st.rdev.toString() : '-',
      xattrs: (xattrs.get(rel) ?? [])
        .map((x) => `${x.key}=${x.value.toString('hex')}`)
        .sort()
        .join(' '),
    })
    if (type === S_IFDIR) {
      for (const name of (await readdir(path, {encoding: 'buffer'})) as Buffer[]) {
        const childRel = rel ? `${rel}/${name.toString('latin1')}` : name.toString('latin1')
        stack.push([Buffer.concat([path, Buffer.from('/'), name]), childRel])
      }
    }
  }
  return out
}

/** Human-readable differences between two descriptions (empty when they agree). */
export function diffTrees(a: Map<string, EntryInfo>, b: Map<string, EntryInfo>, limit = 20): string[] {
  const out: string[] = []
  for (const [path, ea] of a) {
    const eb = b.get(path)
    if (!eb) out.push(`only in the first tree: /${path}`)
    else {
      for (const k of Object.keys(ea) as (keyof EntryInfo)[]) {
        if (ea[k] !== eb[k]) out.push(`/${path}: ${k} ${JSON.stringify(ea[k])} != ${JSON.stringify(eb[k])}`)
      }
    }
    if (out.length >= limit) return out
  }
  for (const path of b.keys()) if (!a.has(path)) out.push(`only in the second tree: /${path}`)
  return out.slice(0, limit)
}
