// The worker side of gunzip.ts: inflates one gzip stream with zlib and hashes what comes out
// (the layer's diff ID), so neither costs the importing thread any time.
//
//   parent ─► {data: ArrayBuffer} … {end}          compressed bytes, a few chunks ahead at most
//   worker ─► {need}                               one input chunk consumed: send another
//   worker ─► {data: ArrayBuffer} … {end, sha256}  decompressed bytes, then the digest of them all
//   parent ─► {ack}                                one output chunk consumed (bounds memory)
//   worker ─► {error, message, code}               corrupt input (zlib's Z_* codes)
import {createHash} from 'node:crypto'
import {parentPort} from 'node:worker_threads'
import {createGunzip} from 'node:zlib'

import {GUNZIP_CHUNK, GUNZIP_OUTPUT_AHEAD, type FromGunzip, type ToGunzip} from './gunzip-protocol.js'

const port = parentPort
if (!port) throw new Error('src/oci/gunzip-worker.js runs only as a worker thread')

const gz = createGunzip({chunkSize: GUNZIP_CHUNK})
const hash = createHash('sha256')
let outstanding = 0
const send = (m: FromGunzip, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer)

gz.on('data', (d: Buffer) => {
  hash.update(d)
  // zlib hands out slices of a buffer it goes on filling: copy before transferring.
  const copy = new Uint8Array(d).buffer
  send({type: 'data', buf: copy}, [copy])
  if (++outstanding >= GUNZIP_OUTPUT_AHEAD) gz.pause()
})
gz.on('end', () => send({type: 'end', sha256: hash.digest('hex')}))
gz.on('error', (err: NodeJS.ErrnoException) =>
  send({type: 'error', message: err.message, code: err.code ?? ''}),
)

port.on('message', (m: ToGunzip) => {
  if (m.type === 'data') gz.write(Buffer.from(m.buf), () => send({type: 'need'}))
  else if (m.type === 'end') gz.end()
  else if (--outstanding < GUNZIP_OUTPUT_AHEAD) gz.resume()
})
