// Paths inside a root filesystem tree that is not the running system. A tree's symlinks are
// relative to its own root (Debian's merged /usr makes /bin, /lib and /sbin links to usr/…), so
// a path is resolved one component at a time, absolute links restarting at the tree's root and
// `..` never leaving it.

import {lstat, readlink} from 'node:fs/promises'
import {join} from 'node:path'

/** Symlinks followed while resolving one path, as the kernel's own limit (MAXSYMLINKS). */
export const MAX_TREE_SYMLINKS = 40

/** The host path of `path` (absolute, inside `tree`) with every symlink followed; null if absent. */
export async function resolveInTree(tree: string, path: string): Promise<string | null> {
  let pending = path.split('/').filter(Boolean)
  const done: string[] = []
  let hops = 0
  while (pending.length > 0) {
    const name = pending.shift()!
    if (name === '.') continue
    if (name === '..') {
      done.pop()
      continue
    }
    const host = join(tree, ...done, name)
    const st = await lstat(host).catch(() => null)
    if (!st) return null
    if (!st.isSymbolicLink()) {
      done.push(name)
      continue
    }
    if (++hops > MAX_TREE_SYMLINKS) return null
    const target = await readlink(host)
    if (target.startsWith('/')) done.length = 0
    pending = [...target.split('/').filter(Boolean), ...pending]
  }
  return join(tree, ...done)
}

/** Whether `path` inside the tree is a regular file (after links); `exec` also wants an x bit. */
export async function treeFile(tree: string, path: string, exec = false): Promise<string | null> {
  const host = await resolveInTree(tree, path)
  if (!host) return null
  const st = await lstat(host).catch(() => null)
  if (!st?.isFile()) return null
  return exec && (st.mode & 0o111) === 0 ? null : host
}

export async function treeDir(tree: string, path: string): Promise<string | null> {
  const host = await resolveInTree(tree, path)
  if (!host) return null
  const st = await lstat(host).catch(() => null)
  return st?.isDirectory() ? host : null
}

/** The directories a device's shell and systemd search for programs, in order. */
export const TREE_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']

/** The tree path of the first executable `name` on the device's PATH, or null. */
export async function whichInTree(tree: string, name: string): Promise<string | null> {
  for (const dir of TREE_PATH) if (await treeFile(tree, `${dir}/${name}`, true)) return `${dir}/${name}`
  return null
}
