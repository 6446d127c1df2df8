import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {mountComposefs, type MountResult} from '../src/image/mount.js'

export default class Mount extends BaseCommand {
  static override summary =
    'Mount a composefs image read-only, its file contents served from an objects directory.'
  static override description = `Mounts IMAGE (an EROFS metadata image made by "cfsboot build") on MOUNTPOINT as a read-only
overlayfs whose data comes from OBJECTS. With --digest, the image's fs-verity digest is checked
first and nothing is mounted when it differs (exit code 4). --verity require makes overlayfs check
every file's content against the digest in the image (needs a kernel with fs-verity, exit code 5
otherwise); maybe (the default) does so when the kernel and the image file have fs-verity; off
never does.`

  static override examples = [
    '<%= config.bin %> mount image.cfs /mnt --objects /sysroot/composefs/objects',
    '<%= config.bin %> mount image.cfs /mnt --objects objects/ --digest 3f2a…e1 --verity require',
  ]

  static override enableJsonFlag = true

  static override args = {
    image: Args.string({description: 'composefs image file', required: true}),
    mountpoint: Args.string({description: 'directory to mount on', required: true}),
  }

  static override flags = {
    objects: Flags.string({description: 'objects directory holding the file contents', required: true}),
    digest: Flags.string({description: 'expected fs-verity digest of the image (64 hex digits)'}),
    verity: Flags.string({
      description: 'per-file content verification by overlayfs',
      options: ['require', 'maybe', 'off'],
      default: 'maybe',
    }),
  }

  async run(): Promise<MountResult> {
    const {args, flags} = await this.parse(Mount)
    const result = await mountComposefs({
      image: args.image,
      mountpoint: args.mountpoint,
      objects: flags.objects,
      ...(flags.digest !== undefined && {digest: flags.digest}),
      verity: flags.verity as 'require' | 'maybe' | 'off',
    })
    if (!this.jsonEnabled()) {
      for (const note of result.notes) this.logToStderr(`note: ${note}`)
      this.log(`mounted ${result.image} on ${result.mountpoint} (verity ${result.verity})`)
    }
    return result
  }
}
