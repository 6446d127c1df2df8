// The worker side of ObjectStaging's background writer: writes batches of small staged objects,
// one after the other, each file with one synchronous call (the fastest way to create many
// small files; on the importing thread those calls were a third of a streamed build's time).
//
//   parent ─► {dir, mode, names: string[], ends: number[], bytes: ArrayBuffer}
//   worker ─► {error: string | null}        one reply a batch, in order
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {parentPort} from 'node:worker_threads'

import type {StageBatch} from './stage-writer.js'

const port = parentPort
if (!port) throw new Error('src/store/stage-writer-worker.js runs only as a worker thread')

port.on('message', (b: StageBatch) => {
  const bytes = new Uint8Array(b.bytes)
  let start = 0
  try {
    b.names.forEach((name, i) => {
      const end = b.ends[i]!
      writeFileSync(join(b.dir, name), bytes.subarray(start, end), {flag: 'wx', mode: b.mode})
      start = end
    })
    port.postMessage({error: null})
  } catch (err) {
    port.postMessage({error: (err as Error).message})
  }
})
