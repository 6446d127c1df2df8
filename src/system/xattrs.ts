// Reading every extended attribute of a whole tree, the symlinks' own included.
//
// Node has no xattr calls. @napi-rs/xattr was measured and rejected: it takes paths and
// attribute names as UTF-8 strings, so it cannot reach a file whose name is not UTF-8 and
// throws on an attribute name that is not UTF-8 ("Invalid attribute"). A single
// `getfattr -R -h -d -m - -e hex` run per tree (package attr) uses llistxattr/lgetxattr (a
// symlink's own attributes, never its target's), keeps names as raw bytes, escapes only
// "\", "\n", "\r" and "=" as \ooo, and is as fast: on the large Debian corpus (32,052
// entries, warm cache) getfattr took 120 ms, @napi-rs/xattr 144-162 ms (async, 16 in flight)
// or 107 ms (sync, blocking the event loop). It also runs in parallel with our own walk.

import {InvalidInputError} from '../errors.js'
import {spawnStreaming} from './exec.js'

/** One extended attribute (the shape of tree/node.ts's Xattr; system/ imports nothing above it). */
export interface Xattr {
  key: string
  value: Buffer
}

/** Attributes per path relative to the root, as byte strings ("" is the root itself). */
export type TreeXattrs = Map<string, Xattr[]>

const FILE_PREFIX = '# file: '

/** Undo getfattr's quoting: "\ooo" is one byte; a backslash is always quoted, so this is exact. */
export function unquoteGetfattr(s: string): string {
  return s.includes('\\')
    ? s.replace(/\\([0-3][0-7]{2})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
    : s
}

/**
 * Parses `getfattr -d -e hex` output (latin1 text) line by line. Kept separate from the
 * process handling so it can be tested on strings.
 */
export class GetfattrParser {
  readonly result: TreeXattrs = new Map()
  private current: Xattr[] | null = null
  private pending = ''

  /** Feed a chunk of output (latin1-decoded). */
  push(chunk: string): void {
    const text = this.pending + chunk
    let start = 0
    for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
      this.line(text.slice(start, nl))
      start = nl + 1
    }
    this.pending = text.slice(start)
  }

  end(): TreeXattrs {
    if (this.pending) this.line(this.pending)
    this.pending = ''
    return this.result
  }

  private line(line: string): void {
    if (line === '') {
      this.current = null
      return
    }
    if (line.startsWith(FILE_PREFIX)) {
      let path = unquoteGetfattr(line.slice(FILE_PREFIX.length))
      if (path === '.') path = ''
      else if (path.startsWith('./')) path = path.slice(2)
      this.current = []
      this.result.set(path, this.current)
      return
    }
    if (!this.current) throw new InvalidInputError(`getfattr: unexpected output line: ${line.slice(0, 80)}`)
    const eq = line.indexOf('=')
    const key = unquoteGetfattr(eq < 0 ? line : line.slice(0, eq))
    const raw = eq < 0 ? '' : line.slice(eq + 1)
    if (raw !== '' && !/^0x([0-9a-fA-F]{2})*$/.test(raw)) {
      throw new InvalidInputError(`getfattr: unexpected value for ${key}: ${raw.slice(0, 40)}`)
    }
    this.current.push({key, value: Buffer.from(raw.slice(2), 'hex')})
  }
}

/** All xattrs of every entry below (and of) `rootDir`, symlinks not followed. */
export async function readTreeXattrs(rootDir: string): Promise<TreeXattrs> {
  const tool = spawnStreaming('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], {
    what: 'reading extended attributes (getfattr)',
    cwd: rootDir,
  })
  const parser = new GetfattrParser()
  let parseError: unknown = null
  // Keep draining stdout even after a parse error, so the tool can exit and be reaped.
  for await (const chunk of tool.stdout) {
    if (parseError) continue
    try {
      parser.push(Buffer.from(chunk as Uint8Array).toString('latin1'))
    } catch (err) {
      parseError = err
    }
  }
  await tool.finish()
  if (parseError) throw parseError
  return parser.end()
}
