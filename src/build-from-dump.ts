// The tree of `cfsboot build --from-dump`: composefs-dump text from a file or stdin. Kept apart
// from build.ts so that the early path of bin/run.js (cli/early.ts) can build from a dump without
// loading what tree and container builds need (the scanner, the store, the registry client).

import {open} from 'node:fs/promises'

import {DumpParser, parseDump} from './format/dump/parse.js'
import type {FsNode} from './tree/node.js'

/** Bytes read from the dump at a time: fewer, larger reads cost less than small ones. */
const READ_CHUNK = 1 << 18

/** Parses the dump at `source` ("-" for stdin) into a tree. */
export async function treeFromDump(source: string, opts: {strict?: boolean}): Promise<FsNode> {
  const parseOpts = opts.strict ? {strict: true} : {}
  if (source === '-') return parseDump(process.stdin as AsyncIterable<Buffer>, parseOpts)
  // A file is read into one buffer, over and over (the parser copies what it keeps): a read
  // stream would allocate a buffer per chunk, which lives until the next GC, and loading
  // Node's stream modules costs more CPU than the reads.
  const parser = new DumpParser(parseOpts)
  const fh = await open(source)
  try {
    const buf = Buffer.allocUnsafe(READ_CHUNK)
    for (;;) {
      const {bytesRead} = await fh.read(buf, 0, READ_CHUNK, null)
      if (bytesRead === 0) break
      parser.feed(buf.subarray(0, bytesRead))
    }
  } finally {
    await fh.close()
  }
  return parser.finish()
}
