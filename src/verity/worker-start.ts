// Starting a digest worker: the one place that knows where the worker's code is. Kept apart from
// the pool (and light: node:worker_threads only) so a command can start its workers before it
// loads anything else. A worker thread takes ~40 ms of its own core to boot Node and ~20 ms more
// to load its modules; started first, that overlaps the calling thread's own loading instead of
// following it (see src/verity/early.ts).
import {Worker} from 'node:worker_threads'

const WORKER_URL = new URL('./worker.js', import.meta.url)

/** Workers whose 'online' or 'exit' event has fired: each fires once, maybe before a pool listens. */
const online = new WeakSet<Worker>()
const exited = new WeakSet<Worker>()

/**
 * A new digest worker (src/verity/worker.ts); it takes tasks once a DigestPool adopts it. It does
 * not keep the process alive until then.
 */
export function startDigestWorker(): Worker {
  // No inherited node options: the worker is plain JavaScript, and some options (the
  // --input-type of `node -e`) even stop a worker from starting.
  const worker = new Worker(WORKER_URL, {execArgv: []})
  worker.once('online', () => online.add(worker))
  worker.once('exit', () => exited.add(worker))
  worker.unref()
  return worker
}

/** Where `worker` (from startDigestWorker) is: booting, running its code, or gone. */
export function workerState(worker: Worker): 'starting' | 'online' | 'exited' {
  return exited.has(worker) ? 'exited' : online.has(worker) ? 'online' : 'starting'
}
