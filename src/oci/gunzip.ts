// gzip layers are inflated on a worker thread (gunzip-worker.ts), which also hashes the
// decompressed bytes (the diff ID). The importing thread parses tar, hashes every file with
// fs-verity and writes objects: it is the busy one, and inflating on it (zlib's stream
// machinery ran on the main thread even where the inflate itself ran on libuv's pool) plus a
// sha256 of every decompressed byte took a third of its time. Memory stays bounded: the worker
// runs a few chunks ahead in each direction at most.

import {Worker} from 'node:worker_threads'

import {InvalidInputError} from '../errors.js'
import {GUNZIP_INPUT_AHEAD, type FromGunzip, type ToGunzip} from './gunzip-protocol.js'

const WORKER_URL = new URL('./gunzip-worker.js', import.meta.url)

export interface Gunzip {
  /** The decompressed bytes. */
  output: AsyncIterable<Buffer>
  /** sha256 (hex) of all decompressed bytes; valid once `output` has ended. */
  sha256(): string
  /** Stops the worker (the consumer gave up, or failed). */
  kill(): void
}

/** A one-line, bad-input error for corrupt gzip data (zlib's Z_* codes). */
function gzipError(message: string, code: string): Error {
  if (code.startsWith('Z_')) return new InvalidInputError(`layer: gzip: ${message}`)
  return new Error(`gunzip worker: ${message}`)
}

export function gunzipInWorker(input: AsyncIterable<Buffer>): Gunzip {
  const worker = new Worker(WORKER_URL, {execArgv: []})
  const post = (m: ToGunzip, transfer: ArrayBuffer[] = []): void => worker.postMessage(m, transfer)
  const chunks: Buffer[] = []
  let ended: string | null = null
  let failure: Error | null = null
  // Whoever waits for the worker (the reader for output, the feeder for room to send).
  let wakeReader: (() => void) | null = null
  let wakeFeeder: (() => void) | null = null
  let inFlight = 0
  const wake = (): void => {
    wakeReader?.()
    wakeReader = null
  }
  worker.on('message', (m: FromGunzip) => {
    if (m.type === 'data') chunks.push(Buffer.from(m.buf))
    else if (m.type === 'need') {
      inFlight--
      wakeFeeder?.()
      wakeFeeder = null
      return
    } else if (m.type === 'end') ended = m.sha256
    else failure ??= gzipError(m.message, m.code)
    wake()
  })
  worker.on('error', (err) => {
    failure ??= err
    wake()
  })
  worker.on('exit', () => {
    failure ??= ended === null ? new Error('gunzip worker: exited early') : null
    wake()
  })

  let stopped = false
  const feed = async (): Promise<void> => {
    for await (const c of input) {
      if (stopped) return
      while (inFlight >= GUNZIP_INPUT_AHEAD && !stopped) await new Promise<void>((r) => (wakeFeeder = r))
      if (stopped) return
      inFlight++
      // A private copy: the source's chunk may share its memory, and a transfer would take it away.
      const buf = c.buffer.slice(c.byteOffset, c.byteOffset + c.byteLength) as ArrayBuffer
      post({type: 'data', buf}, [buf])
    }
    if (!stopped) post({type: 'end'})
  }
  const feeding = feed().catch((err: unknown) => {
    failure ??= err instanceof Error ? err : new Error(String(err))
    wake()
  })

  const kill = (): void => {
    stopped = true
    wakeFeeder?.()
    void worker.terminate()
  }

  async function* output(): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const c = chunks.shift()
        if (c) {
          post({type: 'ack'})
          yield c
          continue
        }
        if (failure) throw failure
        if (ended !== null) break
        await new Promise<void>((r) => (wakeReader = r))
      }
      await feeding
      if (failure) throw failure
    } finally {
      kill()
    }
  }

  return {
    output: output(),
    sha256: () => {
      if (ended === null) throw new Error('gunzip: output read before its end')
      return ended
    },
    kill,
  }
}
