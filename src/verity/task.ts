// One pool task carried out synchronously: by a worker, or by the main thread when it helps.
import {closeSync} from 'node:fs'

import {BlockBuffer, digestOpenFile, fileError, level1OfRange, openRegular} from './file-hash.js'
import {DIGEST_SIZE} from './merkle.js'
import {FilesReply, FilesTask, FileStatus, RangeTask, Reply, Task, toWireError} from './protocol.js'

/** Digests the files of `t` into one packed reply (see FilesReply). */
function digestFiles(t: FilesTask, bb: BlockBuffer): FilesReply {
  const n = t.paths.length
  const reply: FilesReply = {
    id: t.id,
    kind: 'files',
    status: new Uint8Array(n),
    digests: new Uint8Array(n * DIGEST_SIZE),
    sizes: new Float64Array(n),
    errors: [],
  }
  for (let k = 0; k < n; k++) {
    try {
      const {fd, size} = openRegular(t.paths[k]!)
      try {
        reply.sizes[k] = size
        if (size >= t.largeFrom) reply.status[k] = FileStatus.Large
        else reply.digests.set(digestOpenFile(fd, size, bb), k * DIGEST_SIZE)
      } finally {
        closeSync(fd)
      }
    } catch (err) {
      reply.status[k] = FileStatus.Failed
      reply.errors.push({index: k, error: toWireError(err)})
    }
  }
  return reply
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
      const reply = digestFiles(t, bb)
      return {
        reply,
        transfer: [reply.status.buffer, reply.digests.buffer, reply.sizes.buffer] as ArrayBuffer[],
      }
    }
    const level1 = hashRange(t, bb)
    return {reply: {id: t.id, kind: 'range', level1}, transfer: [level1.buffer as ArrayBuffer]}
  } catch (err) {
    return {reply: {id: t.id, kind: 'error', error: toWireError(err)}, transfer: []}
  }
}
