import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {dumpImage} from '../../src/image/inspect.js'

/** Lines are gathered into chunks of about this many characters before being written. */
const CHUNK_CHARS = 1 << 20

export default class ImageDump extends BaseCommand {
  static override summary = 'Print the composefs-dump text of an image.'
  static override description = `Reads IMAGE (a composefs EROFS image) and prints its tree in the composefs-dump(5) text
format, one line per entry, exactly as upstream's \`composefs-info dump\` does. The output can be
fed back to \`cfsboot build --from-dump\` to rebuild the same image. A malformed or hostile image
is refused with one line and exit code 3.`

  static override examples = [
    '<%= config.bin %> image dump image.cfs',
    '<%= config.bin %> image dump image.cfs > tree.dump && <%= config.bin %> build --from-dump tree.dump -o copy.cfs',
  ]

  static override args = {
    image: Args.string({description: 'composefs image file', required: true}),
  }

  async run(): Promise<void> {
    const {args} = await this.parse(ImageDump)
    const chunks: string[] = []
    let current: string[] = []
    let size = 0
    await dumpImage(args.image, (line) => {
      current.push(line)
      size += line.length
      if (size >= CHUNK_CHARS) {
        chunks.push(current.join(''))
        current = []
        size = 0
      }
    })
    chunks.push(current.join(''))
    for (const chunk of chunks) await writeStdout(chunk)
  }
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
