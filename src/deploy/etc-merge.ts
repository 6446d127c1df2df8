// Carrying the administrator's /etc changes to a new deployment, as ostree does.
//
// A deployment's /etc is an overlay: the image's /etc below, the deployment's etc/upper on top.
// The upper therefore holds exactly the administrator's changes (new and modified files, and
// whiteouts for deleted ones). A new deployment starts with a copy of the previous one's upper,
// so every change carries forward. Where the image itself changed a file the administrator had
// also changed, the administrator's version still wins, and the path is reported as a conflict
// (in the deploy output and deployment.json) instead of being silently lost either way.

import {lstat, mkdir, readdir} from 'node:fs/promises'
import {join} from 'node:path'

import {run} from '../system/exec.js'
import {lookupPath} from '../tree/lookup.js'
import {FsNode} from '../tree/node.js'

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
    if (a.content || b.content) return !!a.content && !!b.content && a.content.equals(b.content)
    return !!a.digest && !!b.digest && a.digest.equals(b.digest)
  }
  return a.rdev === b.rdev
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
  const conflicts = paths.filter((rel) => {
    const before = opts.oldRoot ? lookupPath(opts.oldRoot, `/etc/${rel}`, false) : null
    const after = lookupPath(opts.newRoot, `/etc/${rel}`, false)
    return !sameFile(before, after)
  })
  return {carried: paths.length, conflicts: conflicts.map((rel) => `/etc/${rel}`)}
}
