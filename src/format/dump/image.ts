// An image's composefs-dump text, printed straight from the image bytes: each entry is formatted
// (by write.ts's writeLine) as the walk (erofs/walk.ts) meets it, without building a tree, into
// buffers of CHUNK_BYTES handed on as they fill. The output is exactly upstream's
// `composefs-info dump`: the walk goes in upstream's order and keeps its xattr order.
//
// A broken or hostile image must print nothing but an error. So the image is walked twice: a
// first walk checks all of it and notes which inodes have more than one name, and only then
// does the second walk (the same bytes, the same checks) print.

import {escapeInto, MAX_ESCAPED_BYTES} from './escape.js'
import {DumpSink, type DumpFields, writeLine} from './write.js'
import {type ReadOptions, walkImage} from '../erofs/walk.js'

/**
 * Output is handed on in buffers of this size: few enough writes, and little written-out
 * output waiting for the collector (1 MiB cost 2 MiB more peak RSS on a 6 MiB dump).
 */
const CHUNK_BYTES = 1 << 18

/** A hardlinked inode's first path and fields, for the '@' lines of its later names. */
interface FirstName {
  path: Uint8Array
  fields: DumpFields
}

/**
 * Checks the whole image (throwing InvalidInputError on anything malformed, having printed
 * nothing) and returns the function that prints its dump through `drain`, one buffer at a time
 * (the receiver's to keep, unless `drain` returns true: then that buffer is written again).
 */
export function checkedImageDump(
  image: Buffer,
  opts: ReadOptions = {},
): (drain: (bytes: Buffer) => unknown) => void {
  const linked = new Set<number>()
  walkImage(image, {inode() {}, link: (_s, _e, _d, nid) => linked.add(nid)}, opts)
  return (drain) => printImageDump(image, linked, drain, opts)
}

function printImageDump(
  image: Buffer,
  linked: ReadonlySet<number>,
  drain: (bytes: Buffer) => unknown,
  opts: ReadOptions,
): void {
  const sink = new DumpSink(CHUNK_BYTES, drain)
  const firstNames = new Map<number, FirstName>()
  // The escaped path of the entry being printed; pathEnd[d] is where that of the directory
  // at depth d ends (the root's path is empty).
  // (A plain Uint8Array: its subarray, copied into every line, is a builtin; a Buffer's is not.)
  let path = new Uint8Array(4096)
  const pathEnd: number[] = [0]
  /** Appends "/" and the escaped name at depth `depth`; returns the new path length. */
  const enter = (nameStart: number, nameEnd: number, depth: number): number => {
    const start = pathEnd[depth - 1]!
    const need = start + 1 + (nameEnd - nameStart) * MAX_ESCAPED_BYTES
    if (need > path.length) {
      const grown = new Uint8Array(Math.max(need, 2 * path.length))
      grown.set(path.subarray(0, start))
      path = grown
    }
    path[start] = 0x2f
    return escapeInto(path, start + 1, image, nameStart, nameEnd)
  }
  walkImage(
    image,
    {
      inode(nameStart, nameEnd, depth, v) {
        const len = depth === 0 ? 0 : enter(nameStart, nameEnd, depth)
        pathEnd[depth] = len
        if (linked.has(v.nid)) firstNames.set(v.nid, {path: path.slice(0, len), fields: v.copy()})
        writeLine(sink, path, len, v)
      },
      link(nameStart, nameEnd, depth, nid) {
        const len = enter(nameStart, nameEnd, depth)
        const first = firstNames.get(nid)!
        writeLine(sink, path, len, first.fields, first.path, first.path.length)
      },
    },
    opts,
  )
  sink.flush()
}
