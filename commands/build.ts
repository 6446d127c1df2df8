import {Args, Flags} from '@oclif/core'

import {buildImage, BuildResult} from '../src/build.js'
import {BaseCommand} from '../cli/base.js'
import {tuneDumpBuild} from '../cli/v8-tuning.js'
import {transportFlags, transportFrom} from '../cli/remote-flags.js'
import {DEFAULT_CONFIG_VALUES} from '../src/deploy/config.js'
import {progressBar} from '../cli/progress.js'

export default class Build extends BaseCommand {
  static override summary = 'Build a composefs image from a directory tree or a composefs dump.'
  static override description = `Scans SOURCE, stores each regular file's content once in the objects directory under its
fs-verity digest (OBJECTS/xx/yyyy…), inlines files of 64 bytes or less, and writes the EROFS
image. Prints the image's fs-verity digest. The same input always gives the same image bytes.
With --from-dump, SOURCE is a composefs-dump(5) file ("-" for stdin). SOURCE may also be a
container image: oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REPO:TAG], docker://HOST/REPO:TAG (layers
are streamed, never unpacked; the image equals a build of the unpacked image). A failed build
leaves no output file behind.`

  static override examples = [
    '<%= config.bin %> build rootfs/ -o image.cfs --objects /sysroot/composefs/objects',
    '<%= config.bin %> build --from-dump tree.dump -o image.cfs',
    '<%= config.bin %> build rootfs/ -o image.cfs --json',
    '<%= config.bin %> build oci:/srv/layout:v1 -o image.cfs --objects /sysroot/composefs/objects',
  ]

  static override enableJsonFlag = true

  static override args = {
    source: Args.string({
      description:
        'directory tree, container image (oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, docker://HOST/REPO:TAG), or dump file with --from-dump',
      required: true,
    }),
  }

  static override flags = {
    output: Flags.string({char: 'o', description: 'image file to write', required: true}),
    objects: Flags.string({description: 'objects directory to store file contents in'}),
    'from-dump': Flags.boolean({description: 'SOURCE is a composefs-dump file'}),
    strict: Flags.boolean({
      description: 'parse the dump strictly (reject what upstream accepts only leniently)',
    }),
    'min-version': Flags.integer({
      description: 'lowest composefs format version to write',
      default: 0,
      min: 0,
    }),
    'max-version': Flags.integer({
      description: 'highest format version allowed if the tree needs it',
      default: 1,
      min: 0,
    }),
    threads: Flags.integer({description: 'hashing threads (default: all cores)', min: 1}),
    ...transportFlags,
    insecure: Flags.boolean({
      description: 'docker:// sources: plain http to the registry (loopback, trusted networks)',
    }),
    platform: Flags.string({
      description:
        'container images: OS/ARCH[/VARIANT] to take from a multi-arch index (default: this machine)',
    }),
  }

  async run(): Promise<BuildResult> {
    const {args, flags} = await this.parse(Build)
    const progress = progressBar(!this.jsonEnabled() && process.stderr.isTTY === true)
    if (flags['from-dump']) tuneDumpBuild(args.source)
    try {
      const result = await buildImage({
        source: args.source,
        output: flags.output,
        ...(flags.objects !== undefined && {objects: flags.objects}),
        fromDump: flags['from-dump'],
        strict: flags.strict,
        minVersion: flags['min-version'],
        maxVersion: flags['max-version'],
        ...(flags.threads !== undefined && {threads: flags.threads}),
        ...(flags.platform !== undefined && {platform: flags.platform}),
        // docker:// sources only; the defaults of [remote], overridden by the flags.
        registry: await transportFrom(flags, DEFAULT_CONFIG_VALUES.remote),
        onProgress: (p) => progress.update(p.phase, p.done, p.total),
      })
      progress.stop()
      this.log(result.digest)
      return result
    } finally {
      progress.stop()
    }
  }
}
