// `cfsboot build`: tree → objects + image. The first step of the data flow.
//
//   scan the tree ─► small files inline ─► other files: fs-verity digest (all cores)
//                                        └► copy into OBJECTS/xx/yyyy… (once per digest)
//   ─► write the EROFS image to a temporary name, fsync, rename (no half-written image, ever)
//
// From a dump (--from-dump) the tree comes from composefs-dump text instead and no objects
// are touched: a dump names objects by path and digest but carries no file contents.

import {createReadStream} from 'node:fs'
import {open} from 'node:fs/promises'

import {InvalidInputError} from './errors.js'
import {writeImage} from './format/erofs/writer.js'
import {parseDump} from './format/dump/parse.js'
import {ObjectStore} from './store/objects.js'
import {FsNode, objectPath} from './tree/node.js'
import {DiskPath, scanTree, ScannedFile} from './tree/scan.js'
import {Limits} from './format/erofs/layout.js'
import {writeFileAtomic} from './util/fs.js'
import {DigestPool} from './verity/pool.js'

export interface BuildOptions {
  /** A directory tree, or with `fromDump` a composefs-dump file ("-" for stdin). */
  source: string
  /** Image file to write. */
  output: string
  /** Objects directory to fill with the tree's file contents (tree builds only). */
  objects?: string
  fromDump?: boolean
  /** Strict dump parsing (upstream's CFS_PARSE_STRICT). */
  strict?: boolean
  minVersion?: number
  maxVersion?: number
  threads?: number
  onProgress?: (p: BuildProgress) => void
}

export interface BuildProgress {
  phase: 'scan' | 'hash' | 'store' | 'write'
  done: number
  total: number
}

export interface BuildResult {
  /** fs-verity digest of the image, hex. */
  digest: string
  image: string
  imageBytes: number
  formatVersion: number
  inodes: number
  files: {regular: number; inline: number; external: number; externalBytes: number}
  objects: {dir: string | null; added: number; present: number}
}

/** Fills in inline content, digests and object paths for the scanned regular files. */
async function hashFiles(
  files: ScannedFile[],
  opts: BuildOptions,
): Promise<{external: ScannedFile[]; inline: number; externalBytes: number}> {
  const external: ScannedFile[] = []
  let inline = 0
  let externalBytes = 0
  for (const f of files) {
    const size = f.node.size
    if (size === 0) continue
    if (size <= Limits.recommendedInlineContentMax) {
      f.node.content = await readExactly(f.path, size)
      inline++
    } else {
      external.push(f)
      externalBytes += size
    }
  }
  const pool = new DigestPool(opts.threads ? {threads: opts.threads} : {})
  try {
    const digests = await pool.digestFiles(
      external.map((f) => f.path),
      (done) => opts.onProgress?.({phase: 'hash', done, total: external.length}),
    )
    external.forEach((f, i) => {
      f.node.digest = digests[i]!
      f.node.payload = objectPath(digests[i]!)
    })
  } finally {
    await pool.close()
  }
  return {external, inline, externalBytes}
}

async function readExactly(path: DiskPath, size: number): Promise<Buffer> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(size)
    const {bytesRead} = await fh.read(buf, 0, size, 0)
    // The tree changed under us: refuse rather than store content that disagrees with the scan.
    if (bytesRead !== size)
      throw new InvalidInputError(`${path}: file changed while building (size ${size}, read ${bytesRead})`)
    return buf
  } finally {
    await fh.close()
  }
}

async function storeObjects(
  external: ScannedFile[],
  dir: string,
  opts: BuildOptions,
): Promise<{added: number; present: number}> {
  const store = new ObjectStore(dir)
  let added = 0
  let present = 0
  let done = 0
  // Objects are copied a few at a time: copies are I/O bound and run on libuv's thread pool.
  const queue = [...new Map(external.map((f) => [f.node.payload!, f])).values()]
  const worker = async (): Promise<void> => {
    for (let f = queue.pop(); f; f = queue.pop()) {
      if ((await store.importFile(f.path, f.node.digest!)) === 'added') added++
      else present++
      opts.onProgress?.({phase: 'store', done: ++done, total: external.length})
    }
  }
  await Promise.all(Array.from({length: 4}, worker))
  await store.flush()
  return {added, present}
}

async function treeFromDump(opts: BuildOptions): Promise<FsNode> {
  const input = opts.source === '-' ? process.stdin : createReadStream(opts.source)
  return parseDump(input as AsyncIterable<Buffer>, opts.strict ? {strict: true} : {})
}

export async function buildImage(opts: BuildOptions): Promise<BuildResult> {
  let root: FsNode
  let files = {regular: 0, inline: 0, external: 0, externalBytes: 0}
  let objects = {dir: opts.objects ?? null, added: 0, present: 0}
  if (opts.fromDump) {
    if (opts.objects)
      throw new InvalidInputError(
        '--objects cannot be used with --from-dump: a dump carries no file contents',
      )
    root = await treeFromDump(opts)
  } else {
    const scan = await scanTree(opts.source, {
      onProgress: (n) => opts.onProgress?.({phase: 'scan', done: n, total: 0}),
    })
    root = scan.root
    const hashed = await hashFiles(scan.files, opts)
    files = {
      regular: scan.files.length,
      inline: hashed.inline,
      external: hashed.external.length,
      externalBytes: hashed.externalBytes,
    }
    if (opts.objects)
      objects = {dir: opts.objects, ...(await storeObjects(hashed.external, opts.objects, opts))}
  }
  opts.onProgress?.({phase: 'write', done: 0, total: 1})
  const written = writeImage(root, {
    ...(opts.minVersion !== undefined && {minVersion: opts.minVersion}),
    ...(opts.maxVersion !== undefined && {maxVersion: opts.maxVersion}),
  })
  await writeFileAtomic(opts.output, written.image)
  return {
    digest: written.digest.toString('hex'),
    image: opts.output,
    imageBytes: written.image.length,
    formatVersion: written.version,
    inodes: written.inodes,
    files,
    objects,
  }
}
