// Writes small staged objects on a worker thread (stage-writer-worker.ts), in batches: the
// importing thread only copies each file's bytes into the current batch. One message carries
// many files (a message costs far more than a small file's copy), and a few batches at most are
// in flight, so memory stays bounded.

import {Worker} from 'node:worker_threads'

const WORKER_URL = new URL('./stage-writer-worker.js', import.meta.url)
/** A batch is sent once it holds this many bytes or files. */
const BATCH_BYTES = 4 << 20
const BATCH_FILES = 256
/** Batches sent and not yet written. */
const BATCHES_AHEAD = 4

export interface StageBatch {
  dir: string
  /** Mode of the files written. */
  mode: number
  names: string[]
  /** Where each file's bytes end in `bytes`. */
  ends: number[]
  bytes: ArrayBuffer
}

export class StageWriter {
  private worker: Worker | null = null
  private names: string[] = []
  private parts: Uint8Array[] = []
  private size = 0
  private inFlight = 0
  private failure: Error | null = null
  private waiters: (() => void)[] = []

  constructor(
    private readonly dir: string,
    private readonly mode: number,
  ) {}

  /** Queues `data` to be written as DIR/NAME; waits while too many batches are in flight. */
  async add(name: string, data: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure
    this.names.push(name)
    this.parts.push(data)
    this.size += data.length
    if (this.size >= BATCH_BYTES || this.names.length >= BATCH_FILES) await this.send()
  }

  /** Writes what is queued and waits until every batch is on disk (not fsynced). */
  async finish(): Promise<void> {
    try {
      if (this.names.length) await this.send()
      while (this.inFlight > 0 && !this.failure) await this.wait()
    } finally {
      await this.close()
    }
    if (this.failure) throw this.failure
  }

  /** Stops the worker (after a failure, or when the batch is dropped). */
  async close(): Promise<void> {
    const w = this.worker
    this.worker = null
    if (w) await w.terminate()
  }

  private async send(): Promise<void> {
    while (this.inFlight >= BATCHES_AHEAD && !this.failure) await this.wait()
    if (this.failure) throw this.failure
    const bytes = new Uint8Array(this.size)
    const ends: number[] = []
    let at = 0
    for (const p of this.parts) {
      bytes.set(p, at)
      at += p.length
      ends.push(at)
    }
    const batch: StageBatch = {dir: this.dir, mode: this.mode, names: this.names, ends, bytes: bytes.buffer}
    this.names = []
    this.parts = []
    this.size = 0
    this.inFlight++
    this.start().postMessage(batch, [batch.bytes])
  }

  private start(): Worker {
    if (this.worker) return this.worker
    const w = new Worker(WORKER_URL, {execArgv: []})
    w.on('message', (m: {error: string | null}) => {
      this.inFlight--
      if (m.error !== null) this.failure ??= new Error(`staging ${this.dir}: ${m.error}`)
      this.wakeAll()
    })
    w.on('error', (err) => {
      this.failure ??= err
      this.wakeAll()
    })
    w.on('exit', () => {
      if (this.inFlight > 0) this.failure ??= new Error('staging writer: exited early')
      this.wakeAll()
    })
    this.worker = w
    return w
  }

  private wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r))
  }

  private wakeAll(): void {
    const ws = this.waiters
    this.waiters = []
    for (const w of ws) w()
  }
}
