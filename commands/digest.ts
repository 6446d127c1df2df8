import {Args, Flags} from '@oclif/core'

import {BaseCommand} from '../cli/base.js'
import {digestPaths, DigestResult, describeReadError} from '../src/verity/digest-files.js'
import {digestLine} from '../src/verity/output.js'
import {InvalidInputError} from '../src/errors.js'

export default class Digest extends BaseCommand {
  static override summary = 'Print the fs-verity digest of files, as `fsverity digest` does.'
  static override description = `Computes each FILE's fs-verity digest (SHA-256, 4096-byte blocks, no salt) in user space,
on all cores, and prints one line per file, "sha256:<hex> <path>", exactly like \`fsverity digest\`
(fsverity-utils). This is the number the kernel enforces once fs-verity is enabled on the file,
and the name of the file's object in a composefs objects directory. A missing or unreadable file
stops the command with one error line (exit code 3) after the files before it were printed.`

  static override examples = [
    '<%= config.bin %> digest image.cfs',
    '<%= config.bin %> digest --compact image.cfs',
    '<%= config.bin %> digest a b c --json',
  ]

  static override enableJsonFlag = true
  static override strict = false

  static override args = {
    file: Args.string({description: 'files to digest', required: true}),
  }

  static override flags = {
    compact: Flags.boolean({description: 'print only the hex digest, one per line'}),
  }

  async run(): Promise<DigestResult> {
    const {argv, flags} = await this.parse(Digest)
    const paths = argv as string[]
    const outcomes = await digestPaths(paths)
    const files: DigestResult['files'] = []
    for (const o of outcomes) {
      if ('error' in o) throw new InvalidInputError(`cannot digest ${o.path}: ${describeReadError(o.error)}`)
      files.push({path: o.path as string, digest: o.digest.toString('hex'), size: o.size})
      if (!this.jsonEnabled()) process.stdout.write(digestLine(o, flags.compact))
    }
    return {files}
  }
}
