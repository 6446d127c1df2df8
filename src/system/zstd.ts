// zstd decompression for OCI layers (application/vnd.oci.image.layer.v1.tar+zstd).
//
// Node 20's zlib has no zstd. The `zstd` tool (Debian package zstd) decompresses at several
// hundred MB/s in its own process, so it runs beside the importer's hashing instead of taking
// turns on the main thread as a JavaScript/WASM decoder would, and it is the reference
// implementation rather than a less-tested port. The stream is piped through it: the layer is
// never on disk. Callers bound the decompressed bytes themselves (bombs).

import {execa} from 'execa'
import {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'

import {InvalidInputError, UnsupportedError} from '../errors.js'
import {firstLine} from './exec.js'

export interface Decompression {
  output: AsyncIterable<Buffer>
  /** Waits for the tool and throws when it failed (corrupt input). */
  finish(): Promise<void>
  /** Stops the tool (the consumer gave up). */
  kill(): void
}

export function zstdDecompress(input: AsyncIterable<Buffer>): Decompression {
  const sub = execa('zstd', ['-dc', '-q', '--no-progress'], {
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
    encoding: 'buffer',
    buffer: {stdout: false, stderr: true},
    reject: false,
    env: {LC_ALL: 'C'},
  })
  const feeding = pipeline(Readable.from(input), sub.stdin!)
  // A feed error surfaces through finish(); do not let it be "unhandled" meanwhile.
  feeding.catch(() => undefined)
  return {
    output: sub.stdout! as AsyncIterable<Buffer>,
    kill: () => {
      sub.kill()
    },
    finish: async () => {
      const r = await sub
      if ((r as {code?: string}).code === 'ENOENT' && r.exitCode === undefined)
        throw new UnsupportedError('zstd is not installed (Debian package zstd)', {tool: 'zstd'})
      await feeding.catch((err: unknown) => {
        if (!r.isTerminated) throw err
      })
      if (r.failed && !r.isTerminated) {
        const stderr = Buffer.from(r.stderr as unknown as Uint8Array).toString()
        // The input is what is wrong (a corrupt layer): bad input, not a tool failure.
        throw new InvalidInputError(`layer: zstd: ${firstLine(stderr) || `exit code ${r.exitCode}`}`)
      }
    },
  }
}
