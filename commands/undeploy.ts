import {Args} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {lockFlags, sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {undeploy} from '../src/deploy/undeploy.js'

export default class Undeploy extends BaseCommand {
  static override summary = 'Remove a deployment (never the booted one); gc frees its image and objects.'
  static override examples = ['<%= config.bin %> undeploy 2']
  static override enableJsonFlag = true
  static override args = {
    deployment: Args.string({description: 'index from cfsboot status, or a digest prefix', required: true}),
  }
  static override flags = {...sysrootFlags, ...lockFlags}

  async run(): Promise<{digest: string}> {
    const {args, flags} = await this.parse(Undeploy)
    const r = await withSysroot(flags, 'write', (t) =>
      undeploy({
        ...t,
        which: args.deployment,
        lockTimeout: flags['lock-timeout'],
      }),
    )
    this.log(`undeployed ${r.digest}`)
    return r
  }
}
