import {Args, Flags} from '@oclif/core'

import {Flavour, FLAVOURS} from '../src/boot/initramfs.js'
import {BaseCommand} from '../cli/base.js'
import {ExitCode} from '../src/errors.js'
import {formatPrepare, prepare, PrepareResult} from '../src/prepare/prepare.js'

export default class Prepare extends BaseCommand {
  static override summary =
    'Check that a root filesystem tree can become a bootable cfsboot image; --fix adds what cfsboot owns.'
  static override description = `Checks TREE before it is built: the kernel and an initramfs with the cfsboot module in
/usr/lib/modules/KVER/, /etc, /var and /sysroot, node >= 20.19, fsverity and util-linux on PATH,
a writable /tmp, the health program and unit, and cfsboot itself. --fix installs the parts
cfsboot owns (cfsboot, node, health, tmp.mount or an fstab line, /sysroot, the initramfs);
what the distribution must provide is reported with the Debian packages to install. Exits 3
while a check fails. The --json output follows docs/schemas/prepare.json.`

  static override examples = [
    '<%= config.bin %> prepare rootfs',
    '<%= config.bin %> prepare rootfs --fix --add-drivers virtio_blk',
  ]

  static override enableJsonFlag = true
  static override args = {tree: Args.string({description: 'root filesystem tree', required: true})}
  static override flags = {
    fix: Flags.boolean({description: 'install the missing parts cfsboot owns'}),
    node: Flags.string({
      description: 'node binary to copy into the tree when it has none (default: this one)',
    }),
    'add-drivers': Flags.string({
      description: 'extra kernel drivers for the initramfs --fix builds (space or comma separated)',
      multiple: true,
    }),
    flavour: Flags.string({
      description: 'init of the initramfs --fix builds (cfsboot initramfs --flavour)',
      options: [...FLAVOURS],
    }),
  }

  async run(): Promise<PrepareResult> {
    const {args, flags} = await this.parse(Prepare)
    const r = await prepare({
      tree: args.tree,
      fix: flags.fix,
      ...(flags.node !== undefined && {node: flags.node}),
      addDrivers: flags['add-drivers'] ?? [],
      ...(flags.flavour !== undefined && {flavour: flags.flavour as Flavour}),
    })
    if (!this.jsonEnabled()) process.stdout.write(formatPrepare(r))
    if (!r.ok) process.exitCode = ExitCode.BadInput
    return r
  }
}
