// Fuzzing the image reader: thousands of deterministic mutations (bit flips, bytes set to
// 0x00/0xff/random, truncations, u16/u32 fields set to huge values, directory entries pointed at
// their own directory or at other inodes) of valid images. Every mutation must either parse or
// be refused with one InvalidInputError line: any other exception, or a hang, fails the test.
// The run is bounded by its mutation count; a worker thread lets a hang be detected and named.
// Each bug this has found has its own regression test in reader.test.ts ("fuzz: …").
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'
import {Worker} from 'node:worker_threads'

import {writeImage} from '../src/format/erofs/writer.js'
import type {FuzzJob, FuzzMessage} from './helpers/fuzz-worker.js'
import {dir, externalFile, richTree, smallTree} from './helpers/sample-trees.js'

const MUTATIONS = 12_000
const RNG_SEED = 0xc0ffee
/** No progress report for this long means one mutation made the reader loop. */
const HANG_MS = 20_000

function seeds(): FuzzJob['seeds'] {
  const twoBlockDir = dir()
  for (let i = 0; i < 200; i++)
    twoBlockDir.addChild(`file-${String(i).padStart(3, '0')}-with-padding`, externalFile(i + 1, i))
  return [
    {name: 'small', image: writeImage(smallTree()).image},
    {name: 'small-v1', image: writeImage(smallTree(), {minVersion: 1}).image},
    {name: 'rich', image: writeImage(richTree()).image},
    {name: 'dir-blocks', image: writeImage(twoBlockDir).image},
  ]
}

function runFuzz(job: FuzzJob): Promise<Extract<FuzzMessage, {type: 'done'}>> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./helpers/fuzz-worker.js', import.meta.url), {workerData: job})
    let last = 'before the first mutation'
    let timer = setTimeout(onHang, HANG_MS)
    function onHang(): void {
      void worker.terminate()
      reject(new Error(`the reader hung (no progress for ${HANG_MS} ms) near: ${last}`))
    }
    worker.on('message', (msg: FuzzMessage) => {
      clearTimeout(timer)
      if (msg.type === 'progress') {
        last = msg.current
        timer = setTimeout(onHang, HANG_MS)
      } else {
        void worker.terminate()
        resolve(msg)
      }
    })
    worker.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
  })
}

describe('reader fuzzing', () => {
  it(`${MUTATIONS} mutations either parse or are refused with InvalidInputError`, async () => {
    const result = await runFuzz({seeds: seeds(), mutations: MUTATIONS, rngSeed: RNG_SEED})
    assert.deepEqual(result.bugs, [], 'mutations that crashed the reader')
    assert.equal(result.parsed + result.refused, MUTATIONS)
    // The mutations must really exercise the checks, not just break the magic number.
    assert.ok(Object.keys(result.reasons).length >= 20, JSON.stringify(result.reasons))
  })
})
