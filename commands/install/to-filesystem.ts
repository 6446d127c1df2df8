import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {ukiFlags, ukiFromFlags} from '../../cli/uki-flags.js'
import {formatInstall} from '../../src/install/format.js'
import {InstallResult} from '../../src/install/result.js'
import {installToFilesystem} from '../../src/install/to-filesystem.js'

export default class InstallToFilesystem extends BaseCommand {
  static override summary = 'Install an image into an already prepared, mounted physical root.'
  static override description = `DIR is the physical root (an empty, mounted filesystem: only lost+found, boot or efi
may exist). Makes the sysroot layout, deploys the image with its objects, enables fs-verity
where the kernel can (otherwise marks the deployment to be sealed on first boot) and puts
systemd-boot, loader.conf, the kernel and the boot entry into --boot-dir (default DIR/boot).
Nothing is partitioned or formatted. See docs/commands/install.md.`

  static override examples = [
    '<%= config.bin %> install to-filesystem /mnt/root --boot-dir /mnt/esp --image os.cfs --objects ./objects',
  ]

  static override enableJsonFlag = true

  static override args = {
    dir: Args.string({description: 'the physical root (mounted, empty)', required: true}),
  }

  static override flags = {
    image: Flags.string({description: 'the composefs image to install', required: true}),
    objects: Flags.string({description: 'directory with the image’s objects', required: true}),
    'boot-dir': Flags.string({
      description: 'the boot directory, usually the mounted ESP (default: DIR/boot)',
    }),
    config: Flags.string({
      description: 'cfsboot.conf for the boot entry (default: the image’s own /etc/cfsboot/cfsboot.conf)',
    }),
    'boot-loader': Flags.boolean({
      description: 'install systemd-boot and loader.conf into the boot dir',
      default: true,
      allowNo: true,
    }),
    ...ukiFlags,
  }

  async run(): Promise<InstallResult> {
    const {args, flags} = await this.parse(InstallToFilesystem)
    const quiet = this.jsonEnabled()
    const r = await installToFilesystem({
      dir: args.dir,
      image: flags.image,
      objects: flags.objects,
      bootLoader: flags['boot-loader'],
      ...(flags['boot-dir'] !== undefined && {bootDir: flags['boot-dir']}),
      ...(flags.config !== undefined && {configFile: flags.config}),
      ...(ukiFromFlags(flags) && {uki: ukiFromFlags(flags)!}),
      log: (line) => {
        if (!quiet) this.logToStderr(line)
      },
    })
    if (!quiet) this.log(formatInstall(r))
    return r
  }
}
