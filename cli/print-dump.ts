// Printing an image's dump on stdout: shared by `image dump` (commands/image/dump.ts) and its
// early path (cli/early.ts), so both print the same bytes the same way.
import {dumpImage} from '../src/image/inspect.js'

/** Lines are gathered into chunks of about this many characters before being written. */
const CHUNK_CHARS = 1 << 20

/** Reads and checks the whole image and returns its dump in chunks (nothing printed yet). */
export async function imageDumpChunks(image: string): Promise<string[]> {
  const chunks: string[] = []
  let current: string[] = []
  let size = 0
  await dumpImage(image, (line) => {
    current.push(line)
    size += line.length
    if (size >= CHUNK_CHARS) {
      chunks.push(current.join(''))
      current = []
      size = 0
    }
  })
  chunks.push(current.join(''))
  return chunks
}

/** Prints the chunks on stdout, in order. */
export async function printChunks(chunks: readonly string[]): Promise<void> {
  for (const chunk of chunks) await writeStdout(chunk)
}

/** Writes to stdout, waiting when the pipe is full; a closed pipe (`| head`) just ends output. */
function writeStdout(text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => {
      if (!err || (err as NodeJS.ErrnoException).code === 'EPIPE') resolve()
      else reject(err)
    })
  })
}
