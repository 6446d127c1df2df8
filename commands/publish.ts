import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../src/cli/base.js'
import {progressBar} from '../src/cli/progress.js'
import {transportFlags, transportFrom} from '../src/cli/remote-flags.js'
import {loadConfig} from '../src/deploy/config.js'
import {DEFAULT_CONFIG} from '../src/deploy/paths.js'
import {InvalidInputError} from '../src/errors.js'
import {publish, PublishResult} from '../src/remote/publish.js'

export default class Publish extends BaseCommand {
  static override summary = 'Publish a signed release to a static repository directory or an OCI registry.'
  static override description = `Writes the image, the objects the target lacks and a signed release index for the
channel: into a directory any static HTTP server can serve (releases/CHANNEL.json, images/,
objects/), or to an OCI registry as one artifact (oci://HOST/REPO[:TAG], the tag defaulting
to the channel). Every object is checked against the digest the image names first. The index
is signed with an ed25519 key (--key, or cfsboot.conf [publish] key; cfsboot keygen makes one)
and is written last, so devices see the old release or the new one.`

  static override examples = [
    '<%= config.bin %> publish image.cfs --objects ./objects --to /srv/www/fleet --key release.key',
    '<%= config.bin %> publish image.cfs --objects ./objects --to oci://registry.example:5000/fleet/os:stable --key release.key',
  ]

  static override enableJsonFlag = true
  static override args = {image: Args.string({description: 'the image file', required: true})}
  static override flags = {
    objects: Flags.string({description: 'directory holding the image’s objects', required: true}),
    to: Flags.string({
      description: 'a directory (static repository) or oci://HOST/REPO[:TAG]',
      required: true,
    }),
    channel: Flags.string({description: 'release channel', default: 'stable'}),
    key: Flags.string({description: 'ed25519 private key (PEM) to sign the index with'}),
    config: Flags.string({description: 'cfsboot.conf to read', default: DEFAULT_CONFIG}),
    ...transportFlags,
  }

  async run(): Promise<PublishResult> {
    const {args, flags} = await this.parse(Publish)
    const config = await loadConfig(flags.config)
    const key = flags.key ?? config.publishKey
    if (!key) throw new InvalidInputError('no signing key: pass --key or set [publish] key in cfsboot.conf')
    const progress = progressBar(!this.jsonEnabled() && process.stderr.isTTY === true)
    try {
      const r = await publish({
        image: args.image,
        objects: flags.objects,
        to: flags.to,
        channel: flags.channel,
        key,
        transport: await transportFrom(flags, config.remote),
        onProgress: (phase, done, total) => progress.update(phase, done, total),
      })
      progress.stop()
      this.log(`published ${r.digest} to ${r.target} (channel ${r.channel}, key ${r.keyId})`)
      this.log(
        `objects: ${r.objects.uploaded} uploaded (${r.objects.bytesUploaded} bytes), ${r.objects.present} already there`,
      )
      return r
    } finally {
      progress.stop()
    }
  }
}
