import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {DamageError} from '../../src/errors.js'
import {missingObjects} from '../../src/image/inspect.js'

export default class ImageMissingObjects extends BaseCommand {
  static override summary = 'List the objects an image needs that an objects directory lacks.'
  static override description = `Checks that every object IMAGE refers to is a file in the objects directory DIR.
When all are present it prints nothing and exits 0. Otherwise it prints the missing object paths,
one per line, sorted, and exits with code 6 (damage). A malformed image exits with code 3.`

  static override examples = [
    '<%= config.bin %> image missing-objects image.cfs --objects /sysroot/composefs/objects',
    '<%= config.bin %> image missing-objects image.cfs --objects objects/ || echo "incomplete"',
  ]

  static override args = {
    image: Args.string({description: 'composefs image file', required: true}),
  }

  static override flags = {
    objects: Flags.string({description: 'objects directory to check', required: true}),
  }

  async run(): Promise<void> {
    const {args, flags} = await this.parse(ImageMissingObjects)
    const missing = await missingObjects(args.image, flags.objects)
    if (missing.length === 0) return
    process.stdout.write(Buffer.from(missing.join('\n') + '\n', 'latin1'))
    throw new DamageError(`${missing.length} object(s) missing from ${flags.objects}`, {
      missing: missing.length,
    })
  }
}
