import {createInterface} from 'node:readline/promises'

import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../../cli/base.js'
import {ukiFlags, ukiFromFlags} from '../../cli/uki-flags.js'
import {CfsError} from '../../src/errors.js'
import {DEFAULT_ESP_SIZE, formatBytes, parseSize} from '../../src/install/partition.js'
import {InstallResult} from '../../src/install/result.js'
import {ErasePlan, installToDisk} from '../../src/install/to-disk.js'
import {formatInstall} from '../../src/install/format.js'

export default class InstallToDisk extends BaseCommand {
  static override summary = 'Partition a disk (or a disk image file) and install an image on it.'
  static override description = `Factory provisioning. Writes a GPT with an EFI system partition (cfsboot-esp, FAT32)
and a root partition (cfsboot-root, ext4 with fs-verity support), deploys the image with its
objects, installs systemd-boot and the boot entry. Refuses mounted or busy disks, the disk of
the running system, partitions (without --force) and disks that hold data (without --wipe);
shows what will be erased and asks for confirmation (--yes skips the question and is required
when stdin is not a terminal). See docs/commands/install.md.`

  static override examples = [
    '<%= config.bin %> install to-disk /dev/sdb --image os.cfs --objects ./objects --wipe',
    '<%= config.bin %> install to-disk --via-loopback disk.img --size 2G --image os.cfs --objects ./objects --json',
  ]

  static override enableJsonFlag = true

  static override args = {
    device: Args.string({description: 'the whole disk to erase, e.g. /dev/sdb'}),
  }

  static override flags = {
    image: Flags.string({description: 'the composefs image to install', required: true}),
    objects: Flags.string({description: 'directory with the image’s objects', required: true}),
    'via-loopback': Flags.string({
      description: 'create (or overwrite) this disk image file instead of writing a device',
    }),
    size: Flags.string({
      description: 'size of the --via-loopback file, e.g. 2G',
      dependsOn: ['via-loopback'],
    }),
    wipe: Flags.boolean({description: 'erase a disk that has partitions or a filesystem'}),
    force: Flags.boolean({description: 'accept a partition instead of a whole disk'}),
    'esp-size': Flags.string({description: 'size of the EFI system partition', default: '256M'}),
    config: Flags.string({
      description: 'cfsboot.conf for the boot entry (default: the image’s own /etc/cfsboot/cfsboot.conf)',
    }),
    yes: Flags.boolean({char: 'y', description: 'do not ask before erasing'}),
    ...ukiFlags,
  }

  async run(): Promise<InstallResult> {
    const {args, flags} = await this.parse(InstallToDisk)
    const loopFile = flags['via-loopback']
    if (!!args.device === !!loopFile) {
      throw new CfsError('EUSAGE', 'give either DEVICE or --via-loopback FILE --size SIZE')
    }
    if (loopFile && flags.size === undefined) throw new CfsError('EUSAGE', '--via-loopback needs --size')
    const espSize =
      flags['esp-size'] === undefined ? DEFAULT_ESP_SIZE : parseSize(flags['esp-size'], '--esp-size')
    const quiet = this.jsonEnabled()
    const r = await installToDisk({
      ...(args.device !== undefined && {device: args.device}),
      ...(loopFile !== undefined && {loopback: {file: loopFile, size: parseSize(flags.size!, '--size')}}),
      image: flags.image,
      objects: flags.objects,
      wipe: flags.wipe,
      force: flags.force,
      espSize,
      ...(flags.config !== undefined && {configFile: flags.config}),
      ...(ukiFromFlags(flags) && {uki: ukiFromFlags(flags)!}),
      confirm: (plan) => this.confirm(plan, flags.yes),
      log: (line) => {
        if (!quiet) this.logToStderr(line)
      },
    })
    if (!quiet) this.log(formatInstall(r))
    return r
  }

  /** Shows what will be erased (stderr) and asks, unless --yes; refuses without a terminal. */
  private async confirm(plan: ErasePlan, yes: boolean): Promise<boolean> {
    // Straight to stderr: oclif's logToStderr is silent under --json, and this must be seen.
    if (!plan.destructive) {
      process.stderr.write(plan.lines.join('\n') + '\n')
      return true
    }
    process.stderr.write(`This erases everything on:\n${plan.lines.join('\n')}\n`)
    if (yes) return true
    if (!process.stdin.isTTY) {
      throw new CfsError(
        'ENOTCONFIRMED',
        `refusing to erase ${plan.target} without --yes (stdin is not a terminal); nothing was written`,
      )
    }
    const rl = createInterface({input: process.stdin, output: process.stderr})
    // Ctrl-C at the prompt means no (readline would otherwise just pause and leave us hanging).
    const abort = new AbortController()
    rl.on('SIGINT', () => abort.abort())
    try {
      const answer = await rl.question(`Type "yes" to erase ${plan.target} (${formatBytes(plan.size)}): `, {
        signal: abort.signal,
      })
      return answer.trim() === 'yes'
    } catch {
      return false
    } finally {
      rl.close()
    }
  }
}
