import {Args} from '@oclif/core'

import {BaseCommand} from '../src/cli/base.js'
import {keygen, KeygenResult} from '../src/remote/keygen.js'

export default class Keygen extends BaseCommand {
  static override summary = 'Make an ed25519 key pair for signing release indexes.'
  static override description = `Writes PREFIX.key (private, mode 0600: keep it on the publishing machine) and PREFIX.pub
(public: list it in the devices' cfsboot.conf [remote] trusted-keys). Refuses to overwrite.`

  static override examples = ['<%= config.bin %> keygen /etc/cfsboot/keys/release']
  static override enableJsonFlag = true
  static override args = {
    prefix: Args.string({description: 'path prefix of the two key files', required: true}),
  }

  async run(): Promise<KeygenResult> {
    const {args} = await this.parse(Keygen)
    const r = await keygen(args.prefix)
    this.log(`${r.privateKey} (private), ${r.publicKey} (public), key id ${r.keyId}`)
    return r
  }
}
