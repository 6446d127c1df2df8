import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {progressBar} from '../cli/progress.js'
import {lockFlags, sysrootFlags, withSysroot} from '../cli/sysroot-flags.js'
import {ukiFlags, ukiFromFlags} from '../cli/uki-flags.js'
import {deploy, DeployResult} from '../src/deploy/deploy.js'

export default class Deploy extends BaseCommand {
  static override summary = 'Stage an image as a new deployment and make it the next boot’s default.'
  static override description = `Imports the image and only the objects the store lacks (verified by fs-verity digest;
hardlinked when --objects is on the same filesystem, copied otherwise), carries the
administrator's /etc changes forward (conflicts are reported, the administrator's version
kept), installs the image's kernel and initramfs (/usr/lib/modules/KVER/{vmlinuz,initramfs.img})
and writes its boot entry last, which makes it the default in one atomic step. The entry is a
Boot Loader Specification entry, or with --uki-key/--uki-cert (or cfsboot.conf [uki]) a signed
unified kernel image in EFI/Linux whose command line carries the digest. A new deployment's
entry counts its boot tries ([boot] tries, default 3): unless the booted system marks it good
(cfsboot-health), the boot loader falls back to the previous deployment by itself.`

  static override examples = [
    '<%= config.bin %> deploy image.cfs --objects ./objects',
    '<%= config.bin %> deploy image.cfs --objects ./objects --sysroot /mnt/sysroot --json',
    '<%= config.bin %> deploy image.cfs --objects ./objects --uki-key /run/keys/db.key --uki-cert /etc/cfsboot/db.crt',
  ]

  static override enableJsonFlag = true

  static override args = {image: Args.string({description: 'the image file to deploy', required: true})}

  static override flags = {
    ...sysrootFlags,
    ...lockFlags,
    objects: Flags.string({description: 'directory with the image’s objects (when the store lacks them)'}),
    ...ukiFlags,
  }

  async run(): Promise<DeployResult> {
    const {args, flags} = await this.parse(Deploy)
    const progress = progressBar(!this.jsonEnabled() && process.stderr.isTTY === true)
    try {
      const r = await withSysroot(flags, 'write', ({paths, config}) =>
        deploy({
          paths,
          config,
          image: args.image,
          ...(flags.objects !== undefined && {objects: flags.objects}),
          lockTimeout: flags['lock-timeout'],
          ...(ukiFromFlags(flags) && {uki: ukiFromFlags(flags)!}),
          onProgress: (phase, done, total) => progress.update(phase, done, total),
          // With --lock-timeout 0 there is no waiting: the one error line says it all.
          ...(flags['lock-timeout'] > 0 && {
            onWait: () => this.logToStderr('waiting for another cfsboot command to finish…'),
          }),
        }),
      )
      progress.stop()
      this.log(
        r.existing
          ? `${r.digest} was already deployed; it is the default again (generation ${r.generation})`
          : `deployed ${r.digest}: ${r.objects.imported} new object(s) (${r.objects.bytesImported} bytes), ${r.objects.present} already present`,
      )
      this.log(
        `boot entry: ${r.entryKind === 'uki' ? 'EFI/Linux/' : 'loader/entries/'}${r.entry}${r.tries ? ` (${r.tries} boot tries until marked good)` : ''}`,
      )
      if (r.etc.carried)
        this.log(`/etc: ${r.etc.carried} change(s) carried from ${r.etc.mergedFrom?.slice(0, 12)}`)
      for (const c of r.etc.conflicts)
        this.logToStderr(`warning: ${c} changed in the new image too; keeping the administrator's version`)
      return r
    } finally {
      progress.stop()
    }
  }
}
