// Scanning a directory tree on disk into FsNodes: the first step of `cfsboot build`.
//
// What is kept is everything composefs can represent: type and full mode (setuid, setgid,
// sticky), owner, mtime to the nanosecond, device numbers, symlink targets, sizes, hardlinks
// and every xattr (security.*, trusted.*, user.*, system.posix_acl_*). Symlinks are never
// followed. Names are handled as bytes from end to end (readdir and readlink with latin1
// encoding, one character per byte; paths go to node:fs as Buffers unless they are ASCII),
// so a name that is not UTF-8 survives.
//
// Order: the walk goes in readdir order, and calls `onFile` as it goes (the caller interleaves
// its own work); everything that must be deterministic (which name of a hardlinked file owns
// the inode, the order of `files`) is decided afterwards by one walk in sorted order. Time
// and memory are linear in the number of entries.

import {lstatSync, readdirSync, readlinkSync} from 'node:fs'
import {resolve} from 'node:path'
import type {BigIntStats} from 'node:fs'

import {CfsError, InvalidInputError} from '../errors.js'
import {NAME_MAX, PATH_MAX, XATTR_NAME_MAX, XATTR_SIZE_MAX} from './limits.js'
import {readTreeXattrs, type TreeXattrs} from '../system/xattrs.js'
import {resolveHardlinks} from './hardlinks.js'
import {FsNode, S_IFBLK, S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG} from './node.js'

/**
 * Entries walked between two turns of the event loop. The walk uses synchronous lstat/readdir:
 * on a warm cache the promise-based calls cost 3-4x more per entry than the calls themselves
 * (measured on the large corpus: 0.8-1.2 s against 0.25-0.32 s for 32k entries), and their
 * thread-pool round trips compete with the hashing workers. The turns let the worker pool
 * receive new batches (build hashes during the scan) and progress reach the terminal.
 * Cold cache (caches dropped, loaded machine, 4 runs each): 3.8-8.1 s against 3.5-8.3 s for
 * the async walk with 16 calls in flight, medians ~5.3 s against ~3.9 s. A prefetching thread
 * (16 async lstat + 4 readdir in flight ahead of this walk, started only when a slow slice had
 * read from the disk) was tried and dropped: on this project's machines getfattr's walk, which
 * runs beside this one, already keeps a second request in flight, and cold scans with the
 * prefetcher were slower (1.51-2.03 s against 1.24-1.54 s, 3 runs each) at 0.5-1 s more CPU.
 * A device with a slower disk may differ: measure there before bringing it back.
 */
export const SCAN_SLICE_ENTRIES = 256

/** Report progress every this many entries. */
const PROGRESS_EVERY = 512

/** A path on disk: a string when it is valid UTF-8, else the raw bytes (Node's fs takes both). */
export type DiskPath = string | Buffer

export interface ScannedFile {
  node: FsNode
  /** Absolute path on disk. */
  path: DiskPath
}

export interface ScanOptions {
  onProgress?: (entries: number) => void
  /** Do not read xattrs (faster; for callers that do not need them). */
  skipXattrs?: boolean
  /** Entries walked between event-loop turns; default SCAN_SLICE_ENTRIES. */
  sliceEntries?: number
  /**
   * Called for each regular file with a single name as soon as it is found, so a caller can
   * start reading it while the walk goes on (build hashes files during the scan). The node is
   * the one `files` later carries for that file (and the path names the same file).
   */
  onFile?: (path: DiskPath, node: FsNode) => void
}

export interface ScanResult {
  root: FsNode
  /** Each regular-file inode once (hardlink aliases left out), in sorted depth-first order. */
  files: ScannedFile[]
}

function scanError(path: string, err: unknown): CfsError {
  if (err instanceof CfsError) return err
  const e = err as NodeJS.ErrnoException
  const where = Buffer.from(path, 'latin1').toString()
  if (e.code === 'ENOENT')
    return new InvalidInputError(`${where}: vanished while scanning (is the tree changing?)`)
  return new CfsError(
    'ESCAN',
    `scanning ${where}: ${e.code ?? ''} ${(e.message ?? String(e)).split('\n')[0]}`.trim(),
  )
}

/** Seconds and nanoseconds of a bigint timestamp, rounding towards minus infinity (pre-1970 times). */
function splitNs(ns: bigint): [number, number] {
  let sec = ns / 1_000_000_000n
  let nsec = ns % 1_000_000_000n
  if (nsec < 0n) {
    nsec += 1_000_000_000n
    sec -= 1n
  }
  return [Number(sec), Number(nsec)]
}

function nodeFromStat(st: BigIntStats): FsNode {
  const mode = Number(st.mode)
  const node = new FsNode(mode)
  node.uid = Number(st.uid)
  node.gid = Number(st.gid)
  ;[node.mtimeSec, node.mtimeNsec] = splitNs(st.mtimeNs)
  const type = mode & S_IFMT
  if (type === S_IFREG) node.size = Number(st.size)
  // st_rdev as the C library gives it (what `stat` and upstream's mkcomposefs use).
  if (type === S_IFCHR || type === S_IFBLK) node.rdev = Number(st.rdev)
  return node
}

const utf8 = new TextDecoder('utf-8', {fatal: true})

/** A byte that is not ASCII: a byte string without one is the same text in UTF-8. */
const NOT_ASCII = /[^\x00-\x7f]/

/**
 * The path to give node:fs for a byte-string path: the string itself when it is ASCII (Node
 * encodes strings as UTF-8, which leaves ASCII as it is), else its bytes.
 */
const fsPath = (path: string, ascii: boolean): string | Buffer => (ascii ? path : Buffer.from(path, 'latin1'))

/** A byte-string path as a DiskPath: a string when its bytes are valid UTF-8, else the bytes. */
function diskPath(path: string, ascii: boolean): DiskPath {
  if (ascii) return path
  const buf = Buffer.from(path, 'latin1')
  try {
    return utf8.decode(buf)
  } catch {
    return buf
  }
}

export async function scanTree(rootDir: string, opts: ScanOptions = {}): Promise<ScanResult> {
  const rootPath = resolve(rootDir)
  let rootStat: BigIntStats
  try {
    rootStat = lstatSync(rootPath, {bigint: true})
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      throw new InvalidInputError(`${rootDir}: no such directory`)
    throw scanError(Buffer.from(rootPath).toString('latin1'), err)
  }
  if ((Number(rootStat.mode) & S_IFMT) !== S_IFDIR) throw new InvalidInputError(`${rootDir}: not a directory`)

  // getfattr walks the tree in its own process while we walk it here.
  const xattrsPromise: Promise<TreeXattrs | null> = opts.skipXattrs
    ? Promise.resolve(null)
    : readTreeXattrs(rootPath)
  // Do not leave a rejection unhandled if the walk fails first.
  xattrsPromise.catch(() => undefined)

  const root = nodeFromStat(rootStat)
  /** (dev, ino) of non-directories that have other names, resolved in `finish`. */
  const inodeKeys = new Map<FsNode, string>()
  let entries = 1

  // Paths and names are byte strings (latin1) from readdir on: no Buffer per name or path, and
  // a name is already what FsNode keeps. `ascii` says whether the path may go to node:fs as it is.
  const visitEntry = (parent: FsNode, name: string, path: string, ascii: boolean): FsNode => {
    let st: BigIntStats
    let target: string | null = null
    const p = fsPath(path, ascii)
    try {
      st = lstatSync(p, {bigint: true})
      if ((Number(st.mode) & S_IFMT) === S_IFLNK) target = readlinkSync(p, {encoding: 'latin1'})
    } catch (err) {
      throw scanError(path, err)
    }
    const node = nodeFromStat(st)
    if (target !== null) {
      if (target.length >= PATH_MAX) throw new InvalidInputError(`${diskText(path)}: symlink target too long`)
      node.payload = target
      node.size = target.length
    }
    if (!node.isDir() && st.nlink > 1n) inodeKeys.set(node, `${st.dev}:${st.ino}`)
    else if (opts.onFile && node.isReg()) opts.onFile(diskPath(path, ascii), node)
    parent.addChild(name, node)
    if (++entries % PROGRESS_EVERY === 0) opts.onProgress?.(entries)
    return node
  }

  // Depth-first with an explicit stack; every `slice` entries the event loop gets a turn.
  const slice = Math.max(1, opts.sliceEntries ?? SCAN_SLICE_ENTRIES)
  const rootBytes = Buffer.from(rootPath).toString('latin1')
  const stack: [FsNode, string, boolean][] = [[root, rootBytes, !NOT_ASCII.test(rootBytes)]]
  let sinceYield = 0
  while (stack.length > 0) {
    const [dir, path, ascii] = stack.pop()!
    let names: string[]
    try {
      names = readdirSync(fsPath(path, ascii), {encoding: 'latin1'})
    } catch (err) {
      throw scanError(path, err)
    }
    const prefix = path === '/' ? path : path + '/'
    for (const name of names) {
      if (name.length > NAME_MAX) {
        throw new InvalidInputError(
          `${diskText(path)}: a name is ${name.length} bytes long (limit ${NAME_MAX})`,
        )
      }
      const childAscii = ascii && !NOT_ASCII.test(name)
      const child = prefix + name
      const node = visitEntry(dir, name, child, childAscii)
      if (node.isDir()) stack.push([node, child, childAscii])
      if (++sinceYield >= slice) {
        sinceYield = 0
        await new Promise(setImmediate)
      }
    }
  }
  opts.onProgress?.(entries)

  const xattrs = await xattrsPromise
  const files = finish(root, rootBytes, inodeKeys, xattrs)
  return {root, files}
}

/** A byte-string path as messages show it (UTF-8, as a Buffer path was shown before). */
const diskText = (path: string): string => Buffer.from(path, 'latin1').toString()

/** The xattr limits every tree source applies (the scanner and the OCI importer). */
export function checkXattrs(path: string, list: FsNode['xattrs']): void {
  for (const x of list) {
    if (x.key.length > XATTR_NAME_MAX) {
      throw new InvalidInputError(`/${path}: xattr name of ${x.key.length} bytes (limit ${XATTR_NAME_MAX})`)
    }
    if (x.value.length > XATTR_SIZE_MAX) {
      throw new InvalidInputError(
        `/${path}: xattr ${x.key} of ${x.value.length} bytes (limit ${XATTR_SIZE_MAX})`,
      )
    }
  }
}

/**
 * One walk in sorted order: attaches xattrs, turns later names of a hardlinked inode into
 * `linkTo` entries (the first name in this order owns the inode, so the choice does not depend
 * on timing), and lists the regular files.
 */
function finish(
  root: FsNode,
  rootBytes: string,
  inodeKeys: Map<FsNode, string>,
  xattrs: TreeXattrs | null,
): ScannedFile[] {
  // Few entries have xattrs: each list goes to its node by name, rather than every node's path
  // being looked up in the map (a path string hashed per entry).
  if (xattrs) for (const [rel, list] of xattrs) attach(root, rel, list)
  const files: ScannedFile[] = []
  const base = rootBytes === '/' ? '' : rootBytes
  resolveHardlinks(
    root,
    (n) => inodeKeys.get(n),
    (node, rel) => {
      if (node.xattrs.length > 0) checkXattrs(rel, node.xattrs)
      if (node.isReg()) files.push(new TreeFile(node, base))
    },
  )
  return files
}

/** Gives the entry at `rel` (relative to the root, "" for the root) its xattrs, if it was walked. */
function attach(root: FsNode, rel: string, list: FsNode['xattrs']): void {
  let node: FsNode | undefined = root
  if (rel !== '') for (const name of rel.split('/')) node = node?.children?.get(name)
  if (node) node.xattrs = list
}

/**
 * A regular file of the scanned tree, its path made only when asked for: a plain tree build
 * needs the paths of the few files it did not hash during the walk (hardlinked ones), and a
 * path per file held to the end was most of the scan's garbage after the tree itself.
 */
class TreeFile implements ScannedFile {
  constructor(
    readonly node: FsNode,
    private readonly base: string,
  ) {}

  get path(): DiskPath {
    const path = this.base + this.node.path()
    return diskPath(path, !NOT_ASCII.test(path))
  }
}
