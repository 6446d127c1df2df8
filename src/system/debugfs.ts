// debugfs (e2fsprogs) on an unmounted ext4 filesystem: reading and setting inode fields in ONE
// process for thousands of files. Used by install to-disk to turn on fs-verity where the
// installing kernel has none (src/install/preseal.ts): the metadata is written through a normal
// mount first, then each inode gets its data size back and EXT4_VERITY_FL.
//
// debugfs exits 0 even when a command fails; it reports each failure on stderr. So every line
// on stderr except its version banner is an error here.

import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {CfsError} from '../errors.js'
import {needTool} from './exec.js'
import {run} from './exec.js'

/** Paths handed to debugfs are never quoted: only names that need no quoting are accepted. */
const SAFE_PATH = /^\/[A-Za-z0-9._/-]*$/
const BANNER = /^debugfs \d/

export interface InodeFacts {
  path: string
  inode: number
  flags: number
  size: number
  /** The highest logical block any extent maps (null: none). */
  lastBlock: number | null
}

/** Runs `commands` (one per line) with `debugfs [-w] -f FILE device`; returns stdout. */
async function batch(device: string, commands: string[], write: boolean): Promise<string> {
  await needTool('debugfs')
  const dir = await mkdtemp(join(tmpdir(), 'cfsboot-debugfs-'))
  try {
    const file = join(dir, 'commands')
    await writeFile(file, commands.join('\n') + '\n')
    const r = await run('debugfs', [...(write ? ['-w'] : []), '-f', file, device], {
      what: `debugfs ${device}`,
    })
    const errors = r.stderr.split('\n').filter((l) => l.trim() && !BANNER.test(l))
    if (errors.length) {
      throw new CfsError(
        'EDEBUGFS',
        `debugfs ${device}: ${errors[0]!.trim()}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
      )
    }
    return r.stdout
  } finally {
    await rm(dir, {recursive: true, force: true})
  }
}

function checkPath(p: string): string {
  if (!SAFE_PATH.test(p)) throw new Error(`debugfs: path not safe to pass unquoted: ${JSON.stringify(p)}`)
  return p
}

const STAT_INODE = /^Inode: (\d+)\s+Type: \S+\s+Mode:\s+\d+\s+Flags: (0x[0-9a-f]+)/m
const STAT_SIZE = /^User:.*Size: (\d+)$/m

/** Inode number, flags and size of each path (absolute within the filesystem), in order. */
export async function statInodes(device: string, paths: string[]): Promise<InodeFacts[]> {
  if (paths.length === 0) return []
  const out = await batch(
    device,
    paths.map((p) => `stat ${checkPath(p)}`),
    false,
  )
  // With -f, debugfs echoes each command as "debugfs: CMD" before its output.
  const parts = out.split(/^debugfs: stat /m).slice(1)
  if (parts.length !== paths.length) {
    throw new CfsError(
      'EDEBUGFS',
      `debugfs ${device}: ${parts.length} stat results for ${paths.length} files`,
    )
  }
  return parts.map((text, i) => {
    const ino = STAT_INODE.exec(text)
    const size = STAT_SIZE.exec(text)
    if (!ino || !size || !text.startsWith(paths[i]! + '\n')) {
      throw new CfsError('EDEBUGFS', `debugfs ${device}: cannot read the inode of ${paths[i]}`)
    }
    let lastBlock: number | null = null
    const extents = text.split(/^EXTENTS:$/m)[1] ?? ''
    for (const m of extents.matchAll(/\((\d+)(?:-(\d+))?\):/g)) {
      lastBlock = Math.max(lastBlock ?? 0, Number(m[2] ?? m[1]))
    }
    return {
      path: paths[i]!,
      inode: Number(ino[1]),
      flags: parseInt(ino[2]!, 16),
      size: Number(size[1]),
      lastBlock,
    }
  })
}

/** Sets i_size and i_flags of inodes by number, all in one debugfs -w run. */
export async function setInodeSizesAndFlags(
  device: string,
  inodes: {inode: number; size: number; flags: number}[],
): Promise<void> {
  if (inodes.length === 0) return
  const cmds: string[] = []
  for (const i of inodes) {
    cmds.push(
      `set_inode_field <${i.inode}> size ${i.size}`,
      `set_inode_field <${i.inode}> flags 0x${i.flags.toString(16)}`,
    )
  }
  await batch(device, cmds, true)
}
