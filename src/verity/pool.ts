// fs-verity digests of files on all cores. Plain worker_threads (piscina's per-task bookkeeping
// buys nothing here: tasks are few and long, or batched), each worker reading its own files with
// pread, so file data never crosses threads:
// - small files go to workers in batches, so one thread hop serves many files;
// - a large file is cut into ranges of whole 512 KiB level-1 groups; each worker hashes its range
//   up to level 1 and returns one 32-byte hash per 512 KiB, and this thread hashes the few levels
//   above. Ranges shrink towards the end of the file so all threads finish together.
// Memory: one 512 KiB read buffer per thread, and 32 bytes per 512 KiB of a large file here.
// Workers start on first use and do not keep the process alive while idle. With `mainThread`,
// the calling thread hashes queued tasks too (between event-loop turns): a command that has
// nothing else to do gets its first hashes before the workers have even started.
import {closeSync, read} from 'node:fs'
import {availableParallelism} from 'node:os'
import {Worker} from 'node:worker_threads'

import {BlockBuffer, openRegular, READ_SIZE, shrankError} from './file-hash.js'
import {descriptorDigest, DIGEST_SIZE, FsVerityHasher, LEVEL1_SPAN, MerkleLevels} from './merkle.js'
import {FilesReply, FileStatus, fromWireError, Reply, Task} from './protocol.js'
import {runTask} from './task.js'

/** A path as node:fs takes it: a string, or raw bytes for a name that is not UTF-8. */
export type FilePath = string | Buffer

/** Files of this size or more are split into ranges hashed in parallel. */
export const LARGE_FILE = 8 * 1024 * 1024
/** Range bounds: at least this much work per task (a thread hop costs ~0.1 ms)... */
const MIN_RANGE = 2 * 1024 * 1024
/** ...and at most this much (~11 ms of hashing), so no thread waits long for the last one. */
const MAX_RANGE = 16 * 1024 * 1024
/** A range is about this fraction of what remains per thread: ranges shrink near the end. */
const RANGES_PER_THREAD_LEFT = 4
/**
 * Tasks handed to a worker at once: the next ones are there when the current one ends, even when
 * the main thread is busy (hashing itself, or loading the CLI) and answers only now and then.
 */
const DEPTH_PER_WORKER = 3
/**
 * The same while the calling thread does not hash: it is busy with other work (a build walks
 * the tree) and refills the workers only between slices of it, so a worker holding only 3 small
 * batches ran dry: idle for 0.4-0.75 s of a 1.5 GB tree build, against 0.17-0.26 s with 8. Once
 * the calling thread helps, the depth goes back to 3: what a worker holds, that thread cannot take
 * when the queue runs out at the end.
 */
const DEPTH_WITHOUT_MAIN_THREAD = 8
/** Small-file batches: enough batches for load balance, few enough thread hops. */
const MAX_BATCH = 64
const BATCHES_PER_THREAD = 8
export const MAX_THREADS = 64
/** Workers that die before they are up, after which the pool stops starting new ones. */
const MAX_START_FAILURES = 3

export interface DigestPoolOptions {
  /** Worker threads; default: os.availableParallelism(). */
  threads?: number
  /** The calling thread hashes queued work too (blocking its event loop for ~10 ms at a time). */
  mainThread?: boolean
  /**
   * Whether busy workers keep the process alive (default true). False is for work started
   * speculatively (see early.ts): whoever awaits the result must then keep the process alive.
   */
  keepProcessAlive?: boolean
}

/** One file's digest, or why it has none. */
export type DigestOutcome =
  {path: FilePath; digest: Buffer; size: number} | {path: FilePath; error: NodeJS.ErrnoException}

interface Pending {
  task: Task
  resolve: (r: Reply) => void
  reject: (e: Error) => void
}

interface Slot {
  worker: Worker
  inflight: Map<number, Pending>
  online: boolean
}

const WORKER_URL = new URL('./worker.js', import.meta.url)

/** How a file of `size` bytes is cut for `threads` threads: [start, end) pairs, 512 KiB aligned. */
export function planRanges(size: number, threads: number): [number, number][] {
  const ranges: [number, number][] = []
  for (let start = 0; start < size;) {
    const share = Math.ceil((size - start) / (threads * RANGES_PER_THREAD_LEFT) / LEVEL1_SPAN) * LEVEL1_SPAN
    const end = Math.min(size, start + Math.min(MAX_RANGE, Math.max(MIN_RANGE, share)))
    ranges.push([start, end])
    start = end
  }
  return ranges
}

export class DigestPool {
  readonly threads: number
  private mainThread: boolean
  private readonly keepProcessAlive: boolean
  private slots: Slot[] = []
  private queue: Pending[] = []
  private nextId = 1
  private closed = false
  private helping = false
  private started = false
  private startFailures = 0
  private startError: Error | undefined
  private mainBuffer: BlockBuffer | undefined

  constructor(opts: DigestPoolOptions = {}) {
    const n = opts.threads ?? availableParallelism()
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`threads must be a whole number, got ${n}`)
    this.mainThread = opts.mainThread ?? false
    if (n === 0 && !this.mainThread) throw new RangeError('threads: 0 needs mainThread: true')
    this.threads = Math.min(n, MAX_THREADS)
    this.keepProcessAlive = opts.keepProcessAlive ?? true
  }

  /** From now on the calling thread hashes queued work too (see DigestPoolOptions.mainThread). */
  helpOnMainThread(): void {
    this.mainThread = true
    if (this.queue.length > 0 && !this.helping) void this.help()
  }

  /** The fs-verity digest of one file. */
  async digestFile(path: FilePath): Promise<Buffer> {
    const [r] = await this.digestFilesSettled([path])
    if ('error' in r!) throw r.error
    return r!.digest
  }

  /** Digests of `paths`, in order; rejects with the first error. */
  async digestFiles(
    paths: FilePath[],
    onProgress?: (done: number, bytes: number) => void,
  ): Promise<Buffer[]> {
    const outcomes = await this.digestFilesSettled(paths, onProgress, true)
    return outcomes.map((o) => {
      if ('error' in o) throw o.error
      return o.digest
    })
  }

  /**
   * One outcome per path, in order: a digest, or the error that file gave (the others are still
   * digested). With `failFast` the promise rejects at the first error instead.
   */
  digestFilesSettled(
    paths: FilePath[],
    onProgress?: (done: number, bytes: number) => void,
    failFast = false,
  ): Promise<DigestOutcome[]> {
    if (this.closed) return Promise.reject(new Error('DigestPool is closed'))
    const outcomes: DigestOutcome[] = new Array(paths.length)
    if (paths.length === 0) return Promise.resolve(outcomes)
    let done = 0
    let bytes = 0
    return new Promise((resolve, reject) => {
      let failed = false
      const settle = (i: number, o: DigestOutcome, size: number): void => {
        if (failed) return
        if (failFast && 'error' in o) {
          failed = true
          reject(o.error)
          return
        }
        outcomes[i] = o
        done++
        bytes += size
        onProgress?.(done, bytes)
        if (done === paths.length) resolve(outcomes)
      }
      const onBatch = (first: number, r: FilesReply): void => {
        for (const {index, error} of r.errors)
          settle(first + index, {path: paths[first + index]!, error: fromWireError(error)}, 0)
        for (let k = 0; k < r.status.length; k++) {
          const i = first + k
          const path = paths[i]!
          const size = r.sizes[k]!
          if (r.status[k] === FileStatus.Digested) {
            // A view of the reply's buffer: no copy, no object per file beyond the Buffer.
            const digest = Buffer.from(r.digests.buffer, r.digests.byteOffset + k * DIGEST_SIZE, DIGEST_SIZE)
            settle(i, {path, digest, size}, size)
          } else if (r.status[k] === FileStatus.Large) {
            this.digestLarge(path, size).then(
              (digest) => settle(i, {path, digest, size}, size),
              (error: NodeJS.ErrnoException) => settle(i, {path, error}, 0),
            )
          }
        }
      }
      const hashers = this.threads + (this.mainThread ? 1 : 0)
      const batch = Math.max(1, Math.min(MAX_BATCH, Math.ceil(paths.length / (hashers * BATCHES_PER_THREAD))))
      for (let first = 0; first < paths.length; first += batch) {
        const slice = paths.slice(first, first + batch)
        this.run({id: 0, kind: 'files', paths: slice, largeFrom: LARGE_FILE}).then(
          (reply) => onBatch(first, reply as FilesReply),
          (error: NodeJS.ErrnoException) => slice.forEach((path, k) => settle(first + k, {path, error}, 0)),
        )
      }
    })
  }

  /** Stops the workers. Pending work is rejected. */
  async close(): Promise<void> {
    this.closed = true
    const closedErr = new Error('DigestPool is closed')
    for (const p of this.queue.splice(0)) p.reject(closedErr)
    const slots = this.slots.splice(0)
    for (const s of slots) for (const p of s.inflight.values()) p.reject(closedErr)
    await Promise.all(slots.map((s) => s.worker.terminate()))
  }

  /** A large file of `size` bytes: its ranges are hashed by the workers, the top levels here. */
  private async digestLarge(path: FilePath, size: number): Promise<Buffer> {
    const hashers = this.threads + (this.mainThread ? 1 : 0)
    // Ranges finish out of order; each is folded into the tree as soon as all before it are in,
    // so only the out-of-order window is held, not the whole of level 1.
    const levels = new MerkleLevels()
    const done: (Uint8Array | undefined)[] = []
    let next = 0
    await Promise.all(
      planRanges(size, hashers).map(async ([start, end], i) => {
        const reply = await this.run({id: 0, kind: 'range', path, start, end, size})
        done[i] = (reply as Extract<Reply, {kind: 'range'}>).level1
        for (let part = done[next]; part; part = done[next]) {
          levels.addMany(part)
          done[next++] = undefined
        }
      }),
    )
    return descriptorDigest(size, levels.finish())
  }

  private run(task: Task): Promise<Reply> {
    if (this.closed) return Promise.reject(new Error('DigestPool is closed'))
    task.id = this.nextId++
    return new Promise((resolve, reject) => {
      this.queue.push({task, resolve, reject})
      this.dispatch()
      if (this.mainThread && !this.helping) void this.help()
    })
  }

  private dispatch(): void {
    if (this.closed) return
    if (!this.started && this.threads > 0) {
      this.started = true
      for (let i = 0; i < this.threads; i++) this.slots.push(this.spawn())
    }
    if (this.slots.length === 0 && !this.mainThread) {
      // Every worker failed to start and nobody else will do the work.
      const err = this.startError ?? new Error('no digest worker could be started')
      for (const p of this.queue.splice(0)) p.reject(err)
      return
    }
    while (this.queue.length > 0) {
      let best: Slot | undefined
      for (const s of this.slots) {
        // While a worker starts (~30 ms), tasks wait in the queue where the main thread, when it
        // helps, can take them: the first ones would otherwise sit in the starting worker.
        if (this.mainThread && !s.online) continue
        if (!best || s.inflight.size < best.inflight.size) best = s
      }
      if (!best || best.inflight.size >= (this.mainThread ? DEPTH_PER_WORKER : DEPTH_WITHOUT_MAIN_THREAD))
        return
      const p = this.queue.shift()!
      best.inflight.set(p.task.id, p)
      if (best.inflight.size === 1 && this.keepProcessAlive) best.worker.ref()
      best.worker.postMessage(p.task)
    }
  }

  /**
   * The main thread's share: takes queued tasks while there are any, yielding to the event loop
   * after each so worker replies are handled and the workers refilled.
   */
  private async help(): Promise<void> {
    this.helping = true
    try {
      // Let the caller queue all its tasks (and the workers take theirs) before starting.
      await yieldToEventLoop()
      while (!this.closed && this.queue.length > 0) {
        const p = this.queue.shift()!
        this.mainBuffer ??= new BlockBuffer()
        const {reply} = runTask(p.task, this.mainBuffer)
        if (reply.kind === 'error') p.reject(fromWireError(reply.error))
        else p.resolve(reply)
        await yieldToEventLoop()
      }
    } finally {
      this.helping = false
    }
  }

  private spawn(): Slot {
    // No inherited node options: the worker is plain JavaScript, and some options (the
    // --input-type of `node -e`) even stop a worker from starting.
    const worker = new Worker(WORKER_URL, {execArgv: []})
    const slot: Slot = {worker, inflight: new Map(), online: false}
    worker.on('online', () => {
      slot.online = true
      this.dispatch()
    })
    worker.on('message', (reply: Reply) => {
      const p = slot.inflight.get(reply.id)
      if (!p) return
      slot.inflight.delete(reply.id)
      if (slot.inflight.size === 0) worker.unref()
      if (reply.kind === 'error') p.reject(fromWireError(reply.error))
      else p.resolve(reply)
      this.dispatch()
    })
    // A worker that dies (out of memory, a bug) fails its own tasks; a new one takes its place.
    const lost = (err: Error): void => {
      const i = this.slots.indexOf(slot)
      if (i < 0) return
      this.slots.splice(i, 1)
      for (const p of slot.inflight.values()) p.reject(err)
      slot.inflight.clear()
      // A worker that dies at start would die again: it is replaced only a few times.
      if (!slot.online && ++this.startFailures >= MAX_START_FAILURES) this.startError = err
      else if (!this.closed) this.slots.push(this.spawn())
      this.dispatch()
    }
    worker.on('error', lost)
    worker.on('exit', (code) => lost(new Error(`digest worker exited with code ${code}`)))
    // Not before the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref()
    return slot
  }
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/**
 * The fs-verity digest of the file at `path` (of its size when opened). With a pool, the pool
 * does it; without one, a file smaller than LARGE_FILE is hashed on this thread (reads are
 * asynchronous) and a larger one by a pool made for the call.
 */
export async function digestFile(path: FilePath, opts: {pool?: DigestPool} = {}): Promise<Buffer> {
  if (opts.pool) return opts.pool.digestFile(path)
  const {fd, size} = openRegular(path)
  try {
    if (size < LARGE_FILE) {
      const h = new FsVerityHasher()
      const buf = Buffer.alloc(READ_SIZE)
      for (let pos = 0; pos < size;) {
        const n = await readAt(fd, buf, Math.min(buf.length, size - pos), pos)
        if (n === 0) throw shrankError(pos, size)
        h.update(n === buf.length ? buf : buf.subarray(0, n))
        pos += n
      }
      return h.digest()
    }
  } finally {
    closeSync(fd)
  }
  const pool = new DigestPool({mainThread: true})
  try {
    return await pool.digestFile(path)
  } finally {
    await pool.close()
  }
}

function readAt(fd: number, buf: Buffer, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) =>
    read(fd, buf, 0, len, pos, (err, n) => (err ? reject(err) : resolve(n))),
  )
}
