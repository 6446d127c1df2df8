import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {lockFlags, sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {setPinned} from '../src/deploy/pin.js'

export default class Pin extends BaseCommand {
  static override summary = 'Keep a deployment whatever gc would drop.'
  static override examples = ['<%= config.bin %> pin 1', '<%= config.bin %> pin 3fa5c0']
  static override enableJsonFlag = true
  static override args = {
    deployment: Args.string({description: 'index from cfsboot status, or a digest prefix', required: true}),
  }
  static override flags = {...sysrootFlags, ...lockFlags}

  async run(): Promise<{digest: string; pinned: boolean; changed: boolean}> {
    const {args, flags} = await this.parse(Pin)
    const r = await withSysroot(flags, 'write', (t) =>
      setPinned({
        ...t,
        which: args.deployment,
        pinned: true,
        lockTimeout: flags['lock-timeout'],
      }),
    )
    this.log(
      `${r.digest.slice(0, 12)} ${r.pinned ? 'pinned' : 'not pinned'}${r.changed ? '' : ' (unchanged)'}`,
    )
    return r
  }
}
