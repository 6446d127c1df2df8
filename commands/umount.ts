import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {umountComposefs, type UmountResult} from '../src/system/mount.js'

export default class Umount extends BaseCommand {
  static override summary = 'Unmount a composefs mount made by "cfsboot mount".'
  static override description = `Unmounts the overlay at MOUNTPOINT. The image's EROFS mount and its loop device go with it;
nothing is left in /proc/mounts or "losetup -a". Refuses a mount point that is not a composefs mount.`

  static override examples = ['<%= config.bin %> umount /mnt']

  static override enableJsonFlag = true

  static override args = {
    mountpoint: Args.string({description: 'mount point of the composefs mount', required: true}),
  }

  async run(): Promise<UmountResult> {
    const {args} = await this.parse(Umount)
    const result = await umountComposefs(args.mountpoint)
    if (!this.jsonEnabled()) this.log(`unmounted ${result.mountpoint}`)
    return result
  }
}
