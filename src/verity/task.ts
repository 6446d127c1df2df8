// One pool task carried out synchronously: by a worker, or by the main thread when it helps.
import {closeSync} from 'node:fs'

import {BlockBuffer, digestOpenFile, fileError, level1OfRange, openRegular} from './file-hash.js'
import {FileOutcome, RangeTask, Reply, Task, toWireError} from './protocol.js'

function digestOne(path: string | Uint8Array, largeFrom: number, bb: BlockBuffer): FileOutcome {
  try {
    const {fd, size} = openRegular(path)
    try {
      if (size >= largeFrom) return {large: true, size}
      return {digest: new Uint8Array(digestOpenFile(fd, size, bb)), size}
    } finally {
      closeSync(fd)
    }
  } catch (err) {
    return {error: toWireError(err)}
  }
}

function hashRange(t: RangeTask, bb: BlockBuffer): Uint8Array {
  const {fd, size} = openRegular(t.path)
  try {
    if (size !== t.size) throw fileError('ECHANGED', `${String(t.path)} changed size while being read`)
    return level1OfRange(fd, t.start, t.end, size, bb)
  } finally {
    closeSync(fd)
  }
}

/** Runs `t`; returns the reply and the buffers to transfer with it. Never throws. */
export function runTask(t: Task, bb: BlockBuffer): {reply: Reply; transfer: ArrayBuffer[]} {
  try {
    if (t.kind === 'files') {
      return {
        reply: {id: t.id, kind: 'files', outcomes: t.paths.map((p) => digestOne(p, t.largeFrom, bb))},
        transfer: [],
      }
    }
    const level1 = hashRange(t, bb)
    return {reply: {id: t.id, kind: 'range', level1}, transfer: [level1.buffer as ArrayBuffer]}
  } catch (err) {
    return {reply: {id: t.id, kind: 'error', error: toWireError(err)}, transfer: []}
  }
}
