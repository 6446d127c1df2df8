// Runs reader fuzzing in a worker thread, so that the main thread can stop it (and fail the
// test) if one mutation makes the reader hang. Reports progress after every batch. Every image
// the reader accepts must also print, straight from its bytes (`image dump`), the dump of the
// tree it reads.
import {parentPort, workerData} from 'node:worker_threads'

import {InvalidInputError} from '../../src/errors.js'
import {checkedImageDump} from '../../src/format/dump/image.js'
import {dumpToString} from '../../src/format/dump/write.js'
import {readImage} from '../../src/format/erofs/reader.js'
import {makeSeed, mutate, prng} from './mutate.js'

export interface FuzzJob {
  seeds: {name: string; image: Uint8Array}[]
  mutations: number
  rngSeed: number
}

export type FuzzMessage =
  | {type: 'progress'; done: number; current: string}
  | {
      type: 'done'
      parsed: number
      refused: number
      bugs: {description: string; error: string}[]
      reasons: Record<string, number>
    }

const BATCH = 100
const MAX_BUGS_REPORTED = 20

const job = workerData as FuzzJob
const seeds = job.seeds.map((s) => makeSeed(s.name, Buffer.from(s.image)))
const rnd = prng(job.rngSeed)
let parsed = 0
let refused = 0
const bugs: {description: string; error: string}[] = []
const reasons: Record<string, number> = {}
for (let i = 0; i < job.mutations; i++) {
  const m = mutate(seeds[i % seeds.length]!, rnd)
  if (i % BATCH === 0)
    parentPort!.postMessage({type: 'progress', done: i, current: m.description} satisfies FuzzMessage)
  try {
    const tree = readImage(m.bytes)
    parsed++
    const chunks: Buffer[] = []
    checkedImageDump(m.bytes)((b) => chunks.push(b))
    const same = Buffer.concat(chunks).toString('latin1') === dumpToString(tree.root, {xattrOrder: 'tree'})
    if (!same && bugs.length < MAX_BUGS_REPORTED) {
      bugs.push({
        description: `#${i} ${m.description}`,
        error: 'image dump differs from the dump of the tree read',
      })
    }
  } catch (err) {
    if (err instanceof InvalidInputError && !err.message.includes('\n')) {
      refused++
      const reason = err.message.replace(/\d+/g, 'N')
      reasons[reason] = (reasons[reason] ?? 0) + 1
    } else if (bugs.length < MAX_BUGS_REPORTED) {
      bugs.push({description: `#${i} ${m.description}`, error: String((err as Error)?.stack ?? err)})
    }
  }
}
parentPort!.postMessage({type: 'done', parsed, refused, bugs, reasons} satisfies FuzzMessage)
