import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {imageObjects} from '../../src/image/inspect.js'

export interface ImageObjectsResult {
  objects: string[]
}

export default class ImageObjects extends BaseCommand {
  static override summary = 'List the objects an image refers to.'
  static override description = `Prints, one per line, sorted and without duplicates, the path of every object (relative to
an objects directory, e.g. "ab/cdef…") whose content the image's files show.`

  static override examples = [
    '<%= config.bin %> image objects image.cfs',
    '<%= config.bin %> image objects image.cfs --json',
  ]

  static override enableJsonFlag = true

  static override args = {
    image: Args.string({description: 'composefs image file', required: true}),
  }

  async run(): Promise<ImageObjectsResult> {
    const {args} = await this.parse(ImageObjects)
    const objects = await imageObjects(args.image)
    // Object paths are byte strings: write their bytes as they are.
    if (!this.jsonEnabled() && objects.length > 0) {
      process.stdout.write(Buffer.from(objects.join('\n') + '\n', 'latin1'))
    }
    return {objects}
  }
}
