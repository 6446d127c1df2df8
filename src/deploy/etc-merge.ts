// Carrying the administrator's /etc changes to a new deployment, as ostree does.
//
// A deployment's /etc is an overlay: the image's /etc below, the deployment's etc/upper on top.
// The upper therefore holds exactly the administrator's changes (new and modified files, and
// whiteouts for deleted ones). A new deployment starts with a copy of the previous one's upper,
// so every change carries forward. Where the image itself changed a file the administrator had
// also changed, the administrator's version still wins, and the path is reported as a conflict
// (in the deploy output and deployment.json) instead of being silently lost either way.
//
// Not conflicts (nothing of the administrator's would be lost, or there is nothing to lose):
//   - the file is the same in both images (two empty files included);
//   - the administrator's file already has the new image's content;
//   - an empty lock file (`.pwd.lock`, `*.lock`): shadow's lckpwdf and systemd-sysusers create
//     /etc/.pwd.lock at boot, so it lands in the upper of every deployment that booted.

import {lstat, mkdir, readdir, readFile, readlink} from 'node:fs/promises'
import {join} from 'node:path'

import {run} from '../system/exec.js'
import {lookupPath} from '../tree/lookup.js'
import {FsNode} from '../tree/node.js'
import {fsverityDigest} from '../verity/merkle.js'

export interface EtcMerge {
  carried: number
  conflicts: string[]
}

function sameFile(a: FsNode | null, b: FsNode | null): boolean {
  if (!a || !b) return a === b
  a = a.target()
  b = b.target()
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.size !== b.size) return false
  if (a.isSymlink()) return a.payload === b.payload
  if (a.isReg()) {
    if (a.size === 0) return true
    if (a.content || b.content) return !!a.content && !!b.content && a.content.equals(b.content)
    return !!a.digest && !!b.digest && a.digest.equals(b.digest)
  }
  return a.rdev === b.rdev
}

/** Largest /etc file compared by content against the new image (bigger: reported as before). */
export const MAX_COMPARED_ETC_FILE = 16 * 1024 * 1024

const isLockName = (rel: string): boolean => /(^|\/)(\.pwd\.lock|[^/]+\.lock)$/.test(rel)

/** Whether the administrator's file (in the upper) is what the new image has at that path. */
async function upperMatches(file: string, rel: string, node: FsNode | null): Promise<boolean> {
  const st = await lstat(file)
  if (st.isFile() && st.size === 0 && isLockName(rel)) return true
  if (!node) return false
  const n = node.target()
  if (st.isSymbolicLink()) return n.isSymlink() && n.payload === (await readlink(file))
  if (!st.isFile() || !n.isReg() || st.size !== n.size || st.size > MAX_COMPARED_ETC_FILE) return false
  if ((st.mode & 0o7777) !== (n.mode & 0o7777) || st.uid !== n.uid || st.gid !== n.gid) return false
  if (st.size === 0) return true
  const data = await readFile(file)
  if (n.content) return n.content.equals(data)
  return !!n.digest && n.digest.equals(fsverityDigest(data))
}

/** Relative paths of everything below `dir` except directories (files, symlinks, whiteouts). */
async function listNonDirs(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = []
  for (const name of (await readdir(dir)).sort()) {
    const rel = prefix ? `${prefix}/${name}` : name
    const st = await lstat(join(dir, name))
    if (st.isDirectory()) out.push(...(await listNonDirs(join(dir, name), rel)))
    else out.push(rel)
  }
  return out
}

export async function carryEtc(opts: {
  fromUpper: string | null
  oldRoot: FsNode | null
  newRoot: FsNode
  toUpper: string
}): Promise<EtcMerge> {
  await mkdir(opts.toUpper, {recursive: true, mode: 0o755})
  if (!opts.fromUpper) return {carried: 0, conflicts: []}
  try {
    await lstat(opts.fromUpper)
  } catch {
    return {carried: 0, conflicts: []}
  }
  // cp -a keeps owners, modes, times, xattrs (overlay's opaque markers included) and whiteouts.
  await run('cp', ['-a', '--reflink=auto', '--', `${opts.fromUpper}/.`, opts.toUpper], {
    what: 'copying /etc changes',
  })
  const paths = await listNonDirs(opts.toUpper)
  const conflicts: string[] = []
  for (const rel of paths) {
    const before = opts.oldRoot ? lookupPath(opts.oldRoot, `/etc/${rel}`, false) : null
    const after = lookupPath(opts.newRoot, `/etc/${rel}`, false)
    if (sameFile(before, after)) continue
    if (await upperMatches(join(opts.toUpper, rel), rel, after)) continue
    conflicts.push(rel)
  }
  return {carried: paths.length, conflicts: conflicts.map((rel) => `/etc/${rel}`)}
}
