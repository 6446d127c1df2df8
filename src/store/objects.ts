// The objects directory: file contents stored once, named by their fs-verity digest.
//
//   OBJECTS/
//     ab/                          first byte of the digest, 2 hex digits
//       cdef…(62 hex digits)       the content; mode 0644, owner root; never rewritten
//       .tmp-cdef…-<random>        an import in progress (or left by a crash): ignored by
//                                  has() and list(), removed by cleanTemporary()
//
// This is the layout composefs uses (overlayfs finds a file's data through the image's
// `trusted.overlay.redirect=/ab/cdef…` in the data-only lower layer OBJECTS).
//
// An import copies the source (a reflink when the filesystem can, else a plain copy: not a
// hardlink by default, or a later edit of the source tree would change a stored object), fsyncs
// the copy, then links it into place under its final name. `{link: true}` hardlinks instead, for
// a source that is itself an objects directory whose files were just verified (deploy
// --objects on the same filesystem); it copies when the filesystem or the file cannot be linked. link(2) fails when the name exists, so an
// object is never replaced, even by two importers racing; the temporary name is then removed.
// Directory entries are made durable in batches: `flush()` fsyncs each directory touched since
// the last flush, once (or syncs the whole filesystem once when many were touched). An object is
// durable after the flush that follows its import.
//
// Batches (`stage()`: a build's copies, an OCI layer's streamed files) write into a staging
// directory OBJECTS/.staging-<random>/ without fsyncing each file: content whose batch is not
// finished (or whose container, a layer, is not verified yet) never appears under an object
// name. `commit()` makes the whole batch durable with one syncfs(2), then links the staged files
// into place and flushes: one filesystem sync instead of one fsync (a journal commit) per file,
// and still no object has its name before its bytes are durable. `abort()` removes the staging
// directory; one left by a crash is removed by cleanTemporary().

import {randomBytes} from 'node:crypto'
import {constants, lstatSync} from 'node:fs'
import {
  chmod,
  copyFile,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  rename,
  rm,
  unlink,
} from 'node:fs/promises'
import type {FileHandle} from 'node:fs/promises'
import {dirname, join} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {syncFilesystem} from '../system/syncfs.js'
import {DIGEST_SIZE} from '../tree/node.js'
import {forEachLimit} from '../util/concurrency.js'
import {StageWriter} from './stage-writer.js'
import {fsyncDir, fsyncPath} from '../util/fs.js'
import {FsVerityHasher} from '../verity/merkle.js'

/** Objects are world-readable and read-only: overlayfs takes the visible mode from the image. */
export const OBJECT_MODE = 0o644

/** Prefix of in-progress imports inside a fan-out directory. */
export const TEMP_PREFIX = '.tmp-'

/** Prefix of a staging directory (streamed imports not yet committed) inside the store. */
export const STAGING_PREFIX = '.staging-'

/** Staged files being written at once (each write runs on libuv's thread pool). */
const STAGING_WRITES = 16

/** Above this many changed directories, flush() syncs the filesystem once instead. */
const FLUSH_DIRS_MAX = 8

const FANOUT_RE = /^[0-9a-f]{2}$/
const OBJECT_RE = /^[0-9a-f]{62}$/

export type ImportResult = 'added' | 'present'

export interface ImportOptions {
  /** Hardlink the source into the store when it can be (same filesystem, mode OBJECT_MODE). */
  link?: boolean
}

/** link(2) failures that mean "cannot hardlink here", not "something is wrong": copy instead. */
const CANNOT_LINK = new Set(['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP'])

/** Hardlinks `src` to `tmp`; false when it cannot be linked (then the caller copies). */
async function tryLink(src: string | Buffer, tmp: string): Promise<boolean> {
  // A linked object shares its inode with the source: only an object-shaped file qualifies.
  if (((await lstat(src)).mode & 0o7777) !== OBJECT_MODE) return false
  try {
    await link(src, tmp)
    return true
  } catch (err) {
    if (CANNOT_LINK.has((err as NodeJS.ErrnoException).code ?? '')) return false
    throw err
  }
}

function checkDigest(digest: Uint8Array): string {
  if (digest.length !== DIGEST_SIZE) {
    throw new InvalidInputError(`object digest must be ${DIGEST_SIZE} bytes, got ${digest.length}`)
  }
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex')
}

/** OBJECTS/ab/cdef…: where the object with this hex digest lives. */
function objectFile(dir: string, hex: string): string {
  return join(dir, hex.slice(0, 2), hex.slice(2))
}

/**
 * Synchronous on purpose: a lookup that misses is the common case while importing, and a
 * rejected promise's Error with its stack trace cost more than the lstat(2) itself.
 */
function isRegularFile(path: string): boolean {
  return lstatSync(path, {throwIfNoEntry: false})?.isFile() ?? false
}

export class ObjectStore {
  readonly dir: string
  /** Fan-out directories known to exist (saves a mkdir per import). */
  private readonly fanouts = new Set<string>()
  /** Directories whose entries changed since the last flush. */
  private readonly dirty = new Set<string>()

  constructor(dir: string) {
    this.dir = dir
  }

  /** Where the object with this digest lives (whether or not it exists). */
  path(digest: Uint8Array): string {
    const hex = checkDigest(digest)
    return objectFile(this.dir, hex)
  }

  async has(digest: Uint8Array): Promise<boolean> {
    return isRegularFile(this.path(digest))
  }

  /**
   * Stores a copy of `srcPath`, whose fs-verity digest the caller computed, unless an object
   * with that digest is already there. The copy is fsynced before it gets its final name; call
   * `flush()` after a batch of imports to make the names durable.
   */
  async importFile(
    srcPath: string | Buffer,
    digest: Uint8Array,
    opts: ImportOptions = {},
  ): Promise<ImportResult> {
    const hex = checkDigest(digest)
    const fanout = join(this.dir, hex.slice(0, 2))
    const final = join(fanout, hex.slice(2))
    if (isRegularFile(final)) return 'present'
    await this.ensureFanout(fanout)

    const tmp = join(fanout, `${TEMP_PREFIX}${hex.slice(2)}-${randomBytes(6).toString('hex')}`)
    try {
      if (!(opts.link && (await tryLink(srcPath, tmp)))) {
        // FICLONE: share extents on btrfs/xfs; elsewhere libuv falls back to copying bytes.
        await copyFile(srcPath, tmp, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL)
        await chmod(tmp, OBJECT_MODE)
      }
      await fsyncPath(tmp)
      try {
        await link(tmp, final)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        return 'present' // another importer won the race; its object has the same content
      }
      this.dirty.add(fanout)
      return 'added'
    } finally {
      await unlink(tmp).catch(() => undefined)
    }
  }

  /** Starts a staging area for streamed imports (see the header comment). */
  async stage(): Promise<ObjectStaging> {
    await mkdir(this.dir, {recursive: true, mode: 0o755})
    return new ObjectStaging(this, await mkdtemp(join(this.dir, STAGING_PREFIX)))
  }

  /** Links a staged file whose bytes are durable into place under its digest (never replacing an object). */
  async linkStaged(path: string, hex: string): Promise<ImportResult> {
    const fanout = join(this.dir, hex.slice(0, 2))
    const final = join(fanout, hex.slice(2))
    if (isRegularFile(final)) return 'present'
    await this.ensureFanout(fanout)
    try {
      await link(path, final)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      return 'present'
    }
    this.dirty.add(fanout)
    return 'added'
  }

  /**
   * Moves files whose fs-verity digests the caller has just checked (verified downloads) into
   * the store under those digests: made read-only, made durable together with one syncfs(2) (the
   * downloader writes without a per-file fsync: one journal commit per object was the slow part
   * of a pull), then each linked into place (never replacing an object), the names flushed and
   * the temporary names removed. The files must be on the store's filesystem.
   */
  async adoptVerifiedBatch(files: {path: string; digest: Uint8Array}[]): Promise<ImportResult[]> {
    if (files.length === 0) return []
    const hexes = files.map((f) => checkDigest(f.digest))
    try {
      await Promise.all(files.map((f) => chmod(f.path, OBJECT_MODE)))
      await syncFilesystem(files[0]!.path)
      const results = await Promise.all(files.map((f, i) => this.linkStaged(f.path, hexes[i]!)))
      await this.flush()
      return results
    } finally {
      await Promise.all(files.map((f) => unlink(f.path).catch(() => undefined)))
    }
  }

  /**
   * Makes every name added or removed since the last flush durable: fsync of each changed
   * directory, once, or a single syncfs(2) when many changed (a batch touches up to 256 fan-out
   * directories). Their order does not matter: every object was durable before it got its name,
   * so any subset of durable names is valid.
   */
  async flush(): Promise<void> {
    const dirs = [...this.dirty]
    this.dirty.clear()
    if (dirs.length > FLUSH_DIRS_MAX) return syncFilesystem(this.dir)
    await Promise.all(dirs.map(fsyncDir))
  }

  /** Every object's digest (files with a well-formed name; temporaries and strays are skipped). */
  async *list(): AsyncIterable<Buffer> {
    for (const fan of (await this.readdirOrEmpty(this.dir)).sort()) {
      if (!FANOUT_RE.test(fan)) continue
      for (const name of (await this.readdirOrEmpty(join(this.dir, fan))).sort()) {
        if (OBJECT_RE.test(name)) yield Buffer.from(fan + name, 'hex')
      }
    }
  }

  /**
   * Removes temporary files left by interrupted imports; returns how many. Only safe while no
   * other process imports into this store (callers hold the sysroot lock).
   */
  async cleanTemporary(): Promise<number> {
    let removed = 0
    for (const fan of await this.readdirOrEmpty(this.dir)) {
      if (fan.startsWith(STAGING_PREFIX)) {
        await rm(join(this.dir, fan), {recursive: true, force: true})
        this.dirty.add(this.dir)
        removed++
        continue
      }
      if (!FANOUT_RE.test(fan)) continue
      const fanout = join(this.dir, fan)
      for (const name of await this.readdirOrEmpty(fanout)) {
        if (!name.startsWith(TEMP_PREFIX)) continue
        await rm(join(fanout, name), {force: true})
        this.dirty.add(fanout)
        removed++
      }
    }
    await this.flush()
    return removed
  }

  private async ensureFanout(fanout: string): Promise<void> {
    if (this.fanouts.has(fanout)) return
    if (this.fanouts.size === 0) {
      // A new store directory must itself become durable in its parent.
      if (await mkdir(this.dir, {recursive: true, mode: 0o755})) this.dirty.add(dirname(this.dir))
    }
    try {
      await mkdir(fanout, {mode: 0o755})
      this.dirty.add(this.dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
    this.fanouts.add(fanout)
  }

  private async readdirOrEmpty(dir: string): Promise<string[]> {
    try {
      return await readdir(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
  }
}

/** One file being streamed into a staging area: write() its bytes, then end(). */
export interface StagedWriter {
  write(chunk: Uint8Array): Promise<void>
  /** The content's fs-verity digest; the file is kept (once per digest) for commit(). */
  end(): Promise<Buffer>
  /** Drops the file (an error while streaming). */
  discard(): Promise<void>
}

/**
 * A batch of objects not yet part of the store (see the header comment), each file in the
 * staging directory under its digest: streamed in (create), written from memory by a worker
 * thread (addBuffer) or copied in the background, a few at a time (addFile); none is fsynced on
 * its own. commit() makes them durable all at once, then gives them their names.
 */
export class ObjectStaging {
  private readonly staged = new Set<string>()
  private readonly writes = new Set<Promise<void>>()
  /** Small files from memory, written on a worker thread (started on first use). */
  private writer: StageWriter | null = null
  private failure: unknown = null
  private seq = 0

  constructor(
    private readonly store: ObjectStore,
    readonly dir: string,
  ) {}

  get count(): number {
    return this.staged.size
  }

  /** True when the content is staged already or in the store (then nothing is written). */
  private known(hex: string): boolean {
    return this.staged.has(hex) || isRegularFile(objectFile(this.store.dir, hex))
  }

  private tempPath(): string {
    return join(this.dir, `${TEMP_PREFIX}${this.seq++}`)
  }

  /** Streams one file in, hashing it with the fs-verity engine as it is written. */
  async create(): Promise<StagedWriter> {
    if (this.failure) throw this.failure
    const tmp = this.tempPath()
    const fh: FileHandle = await open(tmp, 'wx', OBJECT_MODE)
    const hasher = new FsVerityHasher()
    let closed = false
    const close = async (): Promise<void> => {
      if (!closed) {
        closed = true
        await fh.close()
      }
    }
    return {
      write: async (chunk) => {
        hasher.update(chunk)
        let off = 0
        while (off < chunk.length) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten
      },
      end: async () => {
        const digest = hasher.digest()
        const hex = digest.toString('hex')
        await close()
        if (this.known(hex)) await unlink(tmp)
        else {
          this.staged.add(hex)
          await rename(tmp, join(this.dir, hex))
        }
        return digest
      },
      discard: async () => {
        await close().catch(() => undefined)
        await unlink(tmp).catch(() => undefined)
      },
    }
  }

  /**
   * Stages content already in memory (a small file): hashed here, written under its digest by a
   * worker thread in batches (StageWriter), so the caller goes on reading its stream meanwhile.
   * The staging directory holds no object names, so the file needs no temporary name either.
   */
  async addBuffer(data: Buffer): Promise<Buffer> {
    if (this.failure) throw this.failure
    const hasher = new FsVerityHasher()
    hasher.update(data)
    const digest = hasher.digest()
    const hex = digest.toString('hex')
    if (this.known(hex)) return digest
    this.staged.add(hex)
    await (this.writer ??= new StageWriter(this.dir, OBJECT_MODE)).add(hex, data)
    return digest
  }

  /**
   * Stages a copy of the file at `src`, whose fs-verity digest the caller computed (a reflink
   * where the filesystem can share extents, else copy_file_range). Resolves once the copy is
   * under way; 'present' when the store or this batch has that content already.
   */
  async addFile(src: string | Buffer, digest: Uint8Array): Promise<'staged' | 'present'> {
    const hex = checkDigest(digest)
    if (this.known(hex)) return 'present'
    this.staged.add(hex)
    const dst = join(this.dir, hex)
    await this.background(async () => {
      await copyFile(src, dst, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL)
      await chmod(dst, OBJECT_MODE)
    })
    return 'staged'
  }

  /** Runs a write in the background once fewer than STAGING_WRITES are; its error fails commit(). */
  private async background(write: () => Promise<void>): Promise<void> {
    if (this.failure) throw this.failure
    while (this.writes.size >= STAGING_WRITES) await Promise.race(this.writes)
    const p = write().catch((err: unknown) => {
      this.failure ??= err
    })
    this.writes.add(p)
    void p.finally(() => this.writes.delete(p))
  }

  /**
   * Makes every staged object durable (one syncfs), links each into place under its digest
   * (never replacing an object), makes the names durable, then removes the staging directory.
   */
  async commit(): Promise<{added: number; present: number}> {
    await Promise.all([...this.writes])
    await this.writer?.finish()
    if (this.failure) throw this.failure
    let added = 0
    let present = 0
    if (this.staged.size > 0) {
      await syncFilesystem(this.dir)
      await forEachLimit([...this.staged], STAGING_WRITES, async (hex) => {
        if ((await this.store.linkStaged(join(this.dir, hex), hex)) === 'added') added++
        else present++
      })
    }
    await this.store.flush()
    await rm(this.dir, {recursive: true, force: true})
    return {added, present}
  }

  /** Removes everything staged: nothing of it reaches the store. */
  async abort(): Promise<void> {
    await Promise.allSettled([...this.writes])
    await this.writer?.close()
    await rm(this.dir, {recursive: true, force: true})
  }
}
