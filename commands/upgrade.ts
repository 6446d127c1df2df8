import {Flags} from '@oclif/core'

import {BaseCommand} from '../src/cli/base.js'
import {progressBar} from '../src/cli/progress.js'
import {pullLines} from '../src/cli/pull-output.js'
import {transportFlags, transportFrom} from '../src/cli/remote-flags.js'
import {lockFlags, resolveSysroot, sysrootFlags} from '../src/cli/sysroot-flags.js'
import {PullResult} from '../src/remote/pull.js'
import {upgrade} from '../src/remote/upgrade.js'

export default class Upgrade extends BaseCommand {
  static override summary = 'Update from the configured remote and channel ([remote] in cfsboot.conf).'
  static override description = `cfsboot pull with the remote, channel and trusted keys of cfsboot.conf. --check only says
whether the channel has a release other than the default deployment (and how much it would
download); --download-only stages it (objects verified in the store, protected from gc) for a
later upgrade --from-downloaded, which deploys it without the network.`

  static override examples = [
    '<%= config.bin %> upgrade --check',
    '<%= config.bin %> upgrade --download-only && <%= config.bin %> upgrade --from-downloaded',
  ]

  static override enableJsonFlag = true
  static override flags = {
    ...sysrootFlags,
    ...lockFlags,
    check: Flags.boolean({
      description: 'only say whether an update exists',
      exclusive: ['download-only', 'from-downloaded'],
    }),
    'download-only': Flags.boolean({
      description: 'download and verify, do not deploy',
      exclusive: ['from-downloaded'],
    }),
    'from-downloaded': Flags.boolean({description: 'deploy what --download-only staged'}),
    'trusted-key': Flags.string({
      description: 'public key (PEM) the index must be signed by',
      multiple: true,
    }),
    ...transportFlags,
  }

  async run(): Promise<PullResult> {
    const {flags} = await this.parse(Upgrade)
    const {paths, config} = await resolveSysroot(flags)
    const progress = progressBar(!this.jsonEnabled() && process.stderr.isTTY === true)
    try {
      const r = await upgrade({
        paths,
        config,
        mode: flags.check ? 'check' : flags['download-only'] ? 'download' : 'deploy',
        fromDownloaded: flags['from-downloaded'],
        transport: await transportFrom(flags, config.remote),
        ...(flags['trusted-key'] && {trustedKeys: flags['trusted-key']}),
        lockTimeout: flags['lock-timeout'],
        onProgress: (phase, done, total) => progress.update(phase, done, total),
      })
      progress.stop()
      for (const l of pullLines(r)) this.log(l)
      return r
    } finally {
      progress.stop()
    }
  }
}
