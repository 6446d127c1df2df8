import {Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {progressBar} from '../cli/progress.js'
import {lockFlags, sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {fsck, FsckResult} from '../src/deploy/fsck.js'
import {ExitCode} from '../src/errors.js'

export default class Fsck extends BaseCommand {
  static override summary = 'Verify every object, image, deployment and boot entry; exit 6 on damage.'
  static override examples = ['<%= config.bin %> fsck', '<%= config.bin %> fsck --repair']
  static override enableJsonFlag = true
  static override flags = {
    ...sysrootFlags,
    ...lockFlags,
    repair: Flags.boolean({description: 'remove corrupt objects and dangling entries'}),
  }

  async run(): Promise<FsckResult> {
    const {flags} = await this.parse(Fsck)
    const progress = progressBar(!this.jsonEnabled() && process.stderr.isTTY === true)
    const r = await withSysroot(flags, 'write', (t) =>
      fsck({
        ...t,
        repair: flags.repair,
        lockTimeout: flags['lock-timeout'],
        onProgress: (done, total) => progress.update('objects', done, total),
      }),
    )
    progress.stop()
    for (const d of r.damage)
      this.logToStderr(`damage: ${d.kind} ${d.path}: ${d.problem}${d.repaired ? ' (removed)' : ''}`)
    if (!this.jsonEnabled()) for (const n of r.notes) this.log(`note: ${n}`)
    this.log(
      `${r.objects.checked} object(s) checked, ${r.deployments} deployment(s): ${r.ok ? 'ok' : `${r.damage.length} problem(s)`}`,
    )
    if (!r.ok) process.exitCode = ExitCode.Damage
    return r
  }
}
