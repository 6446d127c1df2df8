import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {lockFlags, sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {gc, GcResult} from '../src/deploy/gc.js'

export default class Gc extends BaseCommand {
  static override summary =
    'Remove deployments, images, objects, kernels and entries no kept deployment needs.'
  static override description = `Kept: the booted deployment, the next boot's default, as many rollback deployments as
cfsboot.conf's [gc] keep-rollback says (default 1), and every pinned one.`

  static override examples = ['<%= config.bin %> gc', '<%= config.bin %> gc --dry-run --json']
  static override enableJsonFlag = true
  static override flags = {
    ...sysrootFlags,
    ...lockFlags,
    'dry-run': Flags.boolean({description: 'report, delete nothing'}),
  }

  async run(): Promise<GcResult> {
    const {flags} = await this.parse(Gc)
    const r = await withSysroot(flags, 'write', (t) =>
      gc({
        ...t,
        dryRun: flags['dry-run'],
        lockTimeout: flags['lock-timeout'],
      }),
    )
    const verb = r.dryRun ? 'would free' : 'freed'
    this.log(
      `${verb} ${r.bytes} bytes: ${r.deployments.removed.length} deployment(s), ${r.images} image(s), ${r.objects} object(s), ${r.kernels} kernel(s), ${r.entries} entr${r.entries === 1 ? 'y' : 'ies'}, ${r.layerRecords} layer record(s)`,
    )
    return r
  }
}
