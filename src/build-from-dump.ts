// The tree of `cfsboot build --from-dump`: composefs-dump text from a file or stdin. Kept apart
// from build.ts so that the early path of bin/run.js (cli/early.ts) can build from a dump without
// loading what tree and container builds need (the scanner, the store, the registry client).

import {createReadStream} from 'node:fs'

import {parseDump} from './format/dump/parse.js'
import type {FsNode} from './tree/node.js'

/** Bytes read from the dump at a time: fewer, larger chunks cost less than the 64 KiB default. */
const READ_CHUNK = 1 << 20

/** Parses the dump at `source` ("-" for stdin) into a tree. */
export async function treeFromDump(source: string, opts: {strict?: boolean}): Promise<FsNode> {
  const input = source === '-' ? process.stdin : createReadStream(source, {highWaterMark: READ_CHUNK})
  return parseDump(input as AsyncIterable<Buffer>, opts.strict ? {strict: true} : {})
}
