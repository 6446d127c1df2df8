import {Args} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {imageInfo, ImageInfoResult} from '../../src/image/inspect.js'

export default class ImageInfo extends BaseCommand {
  static override summary = 'Show what a composefs image holds.'
  static override description = `Parses IMAGE completely (so a damaged image is reported, exit code 3) and prints its
fs-verity digest, the number of inodes in its tree, its size, how many distinct objects it
refers to and its composefs format version. --json prints the same as one object
(schema: docs/schemas/image-info.json).`

  static override examples = [
    '<%= config.bin %> image info image.cfs',
    '<%= config.bin %> image info image.cfs --json',
  ]

  static override enableJsonFlag = true

  static override args = {
    image: Args.string({description: 'composefs image file', required: true}),
  }

  async run(): Promise<ImageInfoResult> {
    const {args} = await this.parse(ImageInfo)
    const info = await imageInfo(args.image)
    this.log(`digest:             ${info.digest}`)
    this.log(`entries:            ${info.entries}`)
    this.log(`size:               ${info.size} bytes`)
    this.log(`referenced objects: ${info.referencedObjects}`)
    this.log(`format version:     ${info.formatVersion}`)
    return info
  }
}
