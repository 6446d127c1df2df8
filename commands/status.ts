import {BaseCommand} from '../cli/base.js'
import {sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {formatStatus, status, Status as StatusResult} from '../src/deploy/status.js'

export default class Status extends BaseCommand {
  static override summary = 'Show the deployments: booted, staged (next boot), rollback, pinned.'
  static override description = `Deployments in the order the boot loader tries them; index 0 boots next. Shows which
deployment booted, which failed (boot counting ran out) and why (the health-check record in
/var/lib/cfsboot/health), and the boot loader's EFI variables where they can be read. The --json
output follows docs/schemas/status.json.`

  static override examples = ['<%= config.bin %> status', '<%= config.bin %> status --json']
  static override enableJsonFlag = true
  static override flags = {...sysrootFlags}

  async run(): Promise<StatusResult> {
    const {flags} = await this.parse(Status)
    const s = await withSysroot(flags, 'read', (t) => status(t))
    if (!this.jsonEnabled()) process.stdout.write(formatStatus(s))
    return s
  }
}
