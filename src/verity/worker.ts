// A DigestPool worker: runs tasks one after the other, synchronously (a worker has nothing else
// to do), with one reusable read buffer.
import {parentPort} from 'node:worker_threads'

import {BlockBuffer} from './file-hash.js'
import {Task} from './protocol.js'
import {runTask} from './task.js'

const port = parentPort
if (!port) throw new Error('src/verity/worker.js runs only as a worker thread')

const bb = new BlockBuffer()

port.on('message', (t: Task) => {
  const {reply, transfer} = runTask(t, bb)
  port.postMessage(reply, transfer)
})
