// Printing an image's dump on stdout: shared by `image dump` (commands/image/dump.ts) and its
// early path (cli/early.ts), so both print the same bytes the same way.
import {imageDump} from '../src/image/dump.js'
import {tuneImageDump} from './v8-tuning.js'

/**
 * Reads and checks the whole image (a broken one throws here, with nothing printed) and returns
 * the function that prints its dump on stdout.
 */
export async function readImageDump(image: string): Promise<() => Promise<void>> {
  tuneImageDump(image)
  const print = await imageDump(image)
  return () => printOnStdout(print)
}

/**
 * Hands each buffer to stdout as the dump is formatted, and settles once all are written. A
 * closed pipe (`| head`) just ends the output: stdout is destroyed then, and nothing more is
 * written to it. A file (or /dev/null) is written at once, so the buffer is handed back to be
 * filled again; a pipe queues it, so the next lines need a new one.
 */
function printOnStdout(print: (drain: (bytes: Buffer) => unknown) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let pending = 1
    let error: Error | undefined
    const settle = () => {
      if (--pending > 0) return
      if (error) reject(error)
      else resolve()
    }
    try {
      print((bytes) => {
        if (process.stdout.destroyed) return true
        pending++
        process.stdout.write(bytes, (err) => {
          if (err && (err as NodeJS.ErrnoException).code !== 'EPIPE') error ??= err
          settle()
        })
        return process.stdout.writableLength === 0
      })
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err))
    }
    settle()
  })
}
