import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {readImageDump} from '../../cli/print-dump.js'

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
    const print = await readImageDump(args.image)
    await print()
  }
}
