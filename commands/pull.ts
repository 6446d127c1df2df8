import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../src/cli/base.js'
import {progressBar} from '../src/cli/progress.js'
import {pullLines} from '../src/cli/pull-output.js'
import {transportFlags, transportFrom} from '../src/cli/remote-flags.js'
import {lockFlags, resolveSysroot, sysrootFlags} from '../src/cli/sysroot-flags.js'
import {pull, PullResult} from '../src/remote/pull.js'

export default class Pull extends BaseCommand {
  static override summary = 'Download a signed release (only the objects the store lacks) and deploy it.'
  static override description = `Fetches the channel's signed release index from a static repository (http(s)://…) or an
OCI registry (oci://HOST/REPO[:TAG|@sha256:…]) and refuses it unless a trusted key
(cfsboot.conf [remote] trusted-keys, or --trusted-key) signed it. Then the image and only the
objects the store lacks, many at once, each checked against its fs-verity digest before it
enters the store. An interrupted pull resumes where it stopped. Then deploys as cfsboot deploy
does (atomic, under the lock), unless --download-only.`

  static override examples = [
    '<%= config.bin %> pull https://updates.example/fleet --channel stable',
    '<%= config.bin %> pull oci://registry.example/fleet/os:stable --download-only --json',
  ]

  static override enableJsonFlag = true
  static override args = {
    source: Args.string({description: 'http(s):// repository or oci:// reference', required: true}),
  }
  static override flags = {
    ...sysrootFlags,
    ...lockFlags,
    channel: Flags.string({description: 'release channel (default: [remote] channel, else stable)'}),
    'trusted-key': Flags.string({
      description: 'public key (PEM) the index must be signed by',
      multiple: true,
    }),
    'download-only': Flags.boolean({description: 'download and verify, do not deploy'}),
    ...transportFlags,
  }

  async run(): Promise<PullResult> {
    const {args, flags} = await this.parse(Pull)
    const {paths, config} = await resolveSysroot(flags)
    const progress = progressBar(!this.jsonEnabled() && process.stderr.isTTY === true)
    try {
      const r = await pull({
        paths,
        config,
        source: args.source,
        channel: flags.channel ?? config.remote.channel,
        mode: flags['download-only'] ? 'download' : 'deploy',
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
