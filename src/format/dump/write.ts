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
import {cmpBytes, FsNode} from '../../tree/node.js'
import type {Xattr} from '../../tree/node.js'
import {ESCAPE_EQUAL, ESCAPE_LONE_DASH, escapeBytes, escapeString} from './escape.js'

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
  const firstPath = new Map<FsNode, string>()
  const stack: Pending[] = [{node: root, path: ''}]
  while (stack.length > 0) {
    const {node, path} = stack.pop()!
    const inode = targetOf(node, path)
    const hardlinkPath = firstPath.get(inode)
    if (hardlinkPath === undefined) firstPath.set(inode, path)
    out(formatLine(path, inode, hardlinkPath, sorted))

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

function formatLine(
  path: string,
  inode: FsNode,
  hardlinkPath: string | undefined,
  sortXattrs: boolean,
): string {
  const payload =
    hardlinkPath !== undefined
      ? hardlinkPath || '/'
      : inode.payload === null
        ? '-'
        : escapeString(inode.payload, ESCAPE_LONE_DASH)
  const content = inode.content === null ? '-' : escapeBytes(inode.content, ESCAPE_LONE_DASH)
  const digest = inode.digest === null ? '-' : inode.digest.toString('hex')
  const mode = (hardlinkPath !== undefined ? '@' : '') + inode.mode.toString(8)
  let line =
    `${path || '/'} ${inode.size} ${mode} ${inode.nlink} ${inode.uid} ${inode.gid} ${inode.rdev} ` +
    `${inode.mtimeSec}.${inode.mtimeNsec} ${payload} ${content} ${digest}`
  const xattrs =
    sortXattrs && inode.xattrs.length > 1
      ? [...inode.xattrs].sort((a, b) => cmpBytes(a.key, b.key))
      : inode.xattrs
  for (const x of xattrs) line += ' ' + formatXattr(x)
  return line + '\n'
}

function formatXattr(x: Xattr): string {
  return `${escapeString(x.key, ESCAPE_EQUAL)}=${escapeBytes(x.value, ESCAPE_EQUAL)}`
}
