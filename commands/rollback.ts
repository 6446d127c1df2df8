import {BaseCommand} from '../cli/base.js'
import {lockFlags, sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {rollback, RollbackResult} from '../src/deploy/rollback.js'

export default class Rollback extends BaseCommand {
  static override summary = 'Make the previous deployment the next boot’s default (again: go back).'
  static override description = `One atomic write: the rollback deployment's BLS entry is rewritten with the next
generation, or its signed UKI renamed (no signing key needed). Its boot counter is dropped. A
failed deployment (no boot tries left) is never the rollback target.`
  static override examples = ['<%= config.bin %> rollback']
  static override enableJsonFlag = true
  static override flags = {...sysrootFlags, ...lockFlags}

  async run(): Promise<RollbackResult> {
    const {flags} = await this.parse(Rollback)
    const r = await withSysroot(flags, 'write', (t) => rollback({...t, lockTimeout: flags['lock-timeout']}))
    this.log(`next boot: ${r.digest} (was ${r.previous.slice(0, 12)})`)
    return r
  }
}
