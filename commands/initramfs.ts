import {Flags} from '@oclif/core'

import {buildInitramfs, Flavour, FLAVOURS, InitramfsResult} from '../src/boot/initramfs.js'
import {BaseCommand} from '../cli/base.js'

export default class Initramfs extends BaseCommand {
  static override summary = 'Build an initramfs that boots cfsboot deployments (dracut + the cfsboot module).'
  static override description = `Runs dracut with the cfsboot module (dracut/90cfsboot) for kernel KVER and writes FILE.
The initramfs is generic (not host-only) and reads no host dracut configuration: it mounts the
image named by cfsboot.digest= on the kernel command line (docs/boot.md). Put it into the
image as /usr/lib/modules/KVER/initramfs.img. --kmoddir builds for a kernel that is not
installed (its lib/modules/KVER directory, depmod'ed). --flavour systemd builds an initramfs that
runs systemd, where cfsboot-setup-root.service mounts the root before initrd-root-fs.target.`

  static override examples = [
    '<%= config.bin %> initramfs -o rootfs/usr/lib/modules/$(uname -r)/initramfs.img',
    '<%= config.bin %> initramfs --kmoddir kernel/lib/modules/6.12.95+deb12-cloud-amd64 --add-drivers virtio_blk -o initramfs.img',
    '<%= config.bin %> initramfs --flavour systemd -o initramfs.img',
  ]

  static override enableJsonFlag = true

  static override flags = {
    output: Flags.string({char: 'o', description: 'initramfs file to write', required: true}),
    kver: Flags.string({
      description: 'kernel release (default: the basename of --kmoddir, else the running kernel)',
    }),
    kmoddir: Flags.string({description: 'lib/modules/KVER directory of a kernel that is not installed'}),
    'add-drivers': Flags.string({
      description: 'extra kernel drivers (space or comma separated)',
      multiple: true,
    }),
    flavour: Flags.string({
      description: "the initramfs's init: dracut's shell init, or systemd (a unit mounts the root)",
      options: [...FLAVOURS],
      default: 'shell',
    }),
    'add-modules': Flags.string({
      description: 'extra dracut modules (space or comma separated)',
      multiple: true,
    }),
  }

  async run(): Promise<InitramfsResult> {
    const {flags} = await this.parse(Initramfs)
    const r = await buildInitramfs({
      output: flags.output,
      ...(flags.kver !== undefined && {kver: flags.kver}),
      ...(flags.kmoddir !== undefined && {kmoddir: flags.kmoddir}),
      addDrivers: flags['add-drivers'] ?? [],
      addModules: flags['add-modules'] ?? [],
      flavour: flags.flavour as Flavour,
    })
    this.log(
      `${r.output}: initramfs for ${r.kver}, ${r.flavour} flavour (${r.bytes} bytes; dracut modules ${r.modules.join(' ')})`,
    )
    return r
  }
}
