// The tree part of `cfsboot build`: walk a directory tree and give every regular file its
// content (small files, inlined in the image) or its fs-verity digest (the others), hashing on
// all cores while the walk goes on. Kept apart from build.ts, which also knows container images,
// dumps and the objects store, so that the plain `build TREE -o IMAGE` can run before the CLI
// framework loads (cli/early.ts) with only this, the scanner, the pool and the image writer.

import {closeSync, openSync, readSync} from 'node:fs'
import {availableParallelism} from 'node:os'

import {InvalidInputError} from './errors.js'
import {Limits} from './format/erofs/layout.js'
import {FsNode, objectPath} from './tree/node.js'
import {DiskPath, scanTree, ScannedFile} from './tree/scan.js'
import {DigestPool} from './verity/pool.js'

export interface BuildProgress {
  phase: 'scan' | 'hash' | 'store' | 'write' | 'layers'
  done: number
  total: number
}

export interface HashedTree {
  root: FsNode
  /** Each regular-file inode once, in sorted depth-first order (ScanResult.files). */
  files: ScannedFile[]
  /** The files stored as objects (not inlined, not empty). */
  external: ScannedFile[]
  inline: number
  externalBytes: number
}

/** Batches that keep both the worker threads and the I/O busy without holding many promises. */
const EARLY_BATCH_FILES = 256
const EARLY_BATCH_BYTES = 64 << 20

/**
 * Hashes files while the scan is still walking the tree: the scanner reports each file as it
 * finds it, and full batches go to the worker pool at once; the digests land in the nodes.
 * Small files (inlined in the image) are read there and then, while their metadata is fresh.
 * Hashing is most of a build's work, so overlapping it with the walk brings the build close to
 * the time hashing alone takes. Per file it keeps nothing but the node (no promise, no key).
 */
class EarlyHasher {
  // The batch as two arrays: the paths go to the pool as they are, the nodes get the digests.
  private nodes: FsNode[] = []
  private paths: DiskPath[] = []
  private batchBytes = 0
  private readonly batches: Promise<void>[] = []
  private done = 0

  constructor(
    private readonly pool: DigestPool,
    private readonly onDone: (done: number) => void,
  ) {}

  add(path: DiskPath, node: FsNode): void {
    const size = node.size
    if (size === 0) return
    if (size <= Limits.recommendedInlineContentMax) {
      node.content = readExactly(path, size)
      return
    }
    this.nodes.push(node)
    this.paths.push(path)
    this.batchBytes += size
    if (this.nodes.length >= EARLY_BATCH_FILES || this.batchBytes >= EARLY_BATCH_BYTES) this.flush()
  }

  flush(): void {
    if (this.nodes.length === 0) return
    const nodes = this.nodes
    const hashed = this.pool.digestFiles(this.paths).then((digests) => {
      nodes.forEach((node, i) => {
        node.digest = digests[i]!
        node.payload = objectPath(digests[i]!)
      })
      this.onDone((this.done += nodes.length))
    })
    this.nodes = []
    this.paths = []
    this.batchBytes = 0
    // Errors surface when finish() awaits; keep them from being "unhandled" meanwhile.
    hashed.catch(() => undefined)
    this.batches.push(hashed)
  }

  /** Waits for every digest, then hashes or reads the files not reported early (hardlinked ones). */
  async finish(files: ScannedFile[]): Promise<void> {
    this.flush()
    await Promise.all(this.batches)
    this.batches.length = 0
    for (const f of files) if (f.node.size > 0 && !f.node.digest && !f.node.content) this.add(f.path, f.node)
    this.flush()
    await Promise.all(this.batches)
  }
}

/** Fills in inline content, digests and object paths for the scanned regular files. */
async function hashFiles(
  files: ScannedFile[],
  hasher: EarlyHasher,
): Promise<{external: ScannedFile[]; inline: number; externalBytes: number}> {
  await hasher.finish(files)
  const external: ScannedFile[] = []
  let inline = 0
  let externalBytes = 0
  for (const f of files) {
    const size = f.node.size
    if (size === 0) continue
    if (size <= Limits.recommendedInlineContentMax) inline++
    else {
      external.push(f)
      externalBytes += size
    }
  }
  return {external, inline, externalBytes}
}

/** The `size` bytes of a small file (synchronous: one short read, cheaper than a promise). */
function readExactly(path: DiskPath, size: number): Buffer {
  const fd = openSync(path, 'r')
  try {
    const buf = Buffer.alloc(size)
    const bytesRead = readSync(fd, buf, 0, size, 0)
    // The tree changed under us: refuse rather than store content that disagrees with the scan.
    if (bytesRead !== size)
      throw new InvalidInputError(
        `${String(path)}: file changed while building (size ${size}, read ${bytesRead})`,
      )
    return buf
  } finally {
    closeSync(fd)
  }
}

/** Scans `source` and fills in inline content, digests and object paths of its regular files. */
export async function scanAndHashTree(
  source: string,
  opts: {threads?: number; onProgress?: (p: BuildProgress) => void} = {},
): Promise<HashedTree> {
  // By default one worker per core but one: this thread walks the tree meanwhile, and hashes
  // too once the walk is done (one thread fewer to start and to hold in memory).
  const workers = opts.threads ?? availableParallelism() - 1
  const pool = new DigestPool({threads: workers, mainThread: workers === 0})
  try {
    const hasher = new EarlyHasher(pool, (done) => opts.onProgress?.({phase: 'hash', done, total: 0}))
    const scan = await scanTree(source, {
      onProgress: (n) => opts.onProgress?.({phase: 'scan', done: n, total: 0}),
      onFile: (path, node) => hasher.add(path, node),
    })
    if (opts.threads === undefined) pool.helpOnMainThread()
    return {root: scan.root, files: scan.files, ...(await hashFiles(scan.files, hasher))}
  } finally {
    await pool.close()
  }
}
