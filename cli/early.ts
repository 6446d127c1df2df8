// `build` of a tree or a dump, and `image dump`, without loading the CLI framework. All are
// short, CPU-bound commands that upstream's C tools answer in a fraction of a second (a tree
// build of 1.5 GB in ~2 s); loading @oclif/core, the command index and everything `cfsboot
// build` imports for container builds and the objects store (the registry client, the store)
// costs ~0.2 s of CPU and ~30 MiB. So bin/run.js hands these here first, as it hands `digest`
// to src/verity/early.ts:
// - only the plain forms are answered here: `build --from-dump SOURCE -o|--output OUTPUT
//   [--strict]` (SOURCE a file, not stdin), `build TREE -o|--output OUTPUT` (TREE not a
//   container image reference) and `image dump IMAGE`, each flag at most once;
// - they print exactly what the oclif commands print (test/early.test.ts compares both);
// - anything else (--json, --help, another flag, a value that looks like a flag, a container
//   image) goes on to oclif;
// - a failure is reported here as BaseCommand reports it (one line, the same exit code): handing
//   it to oclif ran the whole command again, so a tree build that failed at its end (an output
//   directory that is not there) scanned and hashed the tree twice before saying so. Neither
//   command has written anything when it fails (the image is renamed into place last, the dump is
//   printed only after the whole image was read and checked).

import type {FsNode} from '../src/tree/node.js'
import type {Progress} from './progress.js'

export interface EarlyBuildArguments {
  source: string
  output: string
  /** SOURCE is a dump (else a directory tree). */
  fromDump: boolean
  /** Only with fromDump. */
  strict: boolean
}

const isValue = (v: string | undefined): v is string => v !== undefined && v !== '' && !v.startsWith('-')

/** The plain `build` forms (of a dump or a tree), or undefined for anything oclif must parse. */
export function readBuildArguments(args: readonly string[]): EarlyBuildArguments | undefined {
  let source: string | undefined
  let output: string | undefined
  let fromDump = false
  let strict = false
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!
    if (a === '--from-dump') {
      if (fromDump) return undefined
      fromDump = true
    } else if (a === '--strict') {
      if (strict) return undefined
      strict = true
    } else if (a === '-o' || a === '--output' || a.startsWith('--output=')) {
      const v = a.startsWith('--output=') ? a.slice('--output='.length) : args[++i]
      if (output !== undefined || !isValue(v)) return undefined
      output = v
    } else if (isValue(a) && source === undefined) {
      source = a
    } else {
      return undefined
    }
  }
  if (source === undefined || output === undefined || (strict && !fromDump)) return undefined
  return {source, output, fromDump, strict}
}

/** The image of the plain `image dump IMAGE` form, or undefined. */
export function readDumpArguments(args: readonly string[]): string | undefined {
  return args.length === 1 && isValue(args[0]) ? args[0] : undefined
}

/** oclif's --json by environment (`jsonEnabled()` reads CFSBOOT_CONTENT_TYPE): leave it to oclif. */
const jsonByEnvironment = (): boolean => process.env.CFSBOOT_CONTENT_TYPE !== undefined

/**
 * What oclif does when its command module loads: a reader that went away (`| head`) just ends
 * the output. Any other stdout error is thrown, as there.
 */
function ignoreEpipe(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') return
    throw err
  })
}

/** BaseCommand's rendering of an error (cli/base.ts): one line on stderr, the error's exit code. */
async function failAsBaseCommand(err: unknown): Promise<number> {
  const {errorReport} = await import('./error-report.js')
  if (process.env.CFSBOOT_DEBUG) console.error(err)
  const report = errorReport(err)
  process.stderr.write(`Error: ${report.message}\n`)
  return report.exitCode
}

/**
 * Called by bin/run.js with the arguments after `build`. Returns the exit code when it has
 * answered the command (built the image and printed its digest, or reported why not), or
 * undefined when oclif should run the command.
 */
export async function buildBeforeOclif(args: readonly string[]): Promise<number | undefined> {
  const parsed = readBuildArguments(args)
  if (!parsed || jsonByEnvironment()) return undefined
  ignoreEpipe()
  let digest: string
  try {
    // A container image is built by oclif's command.
    if (!parsed.fromDump && (await isImageReference(parsed.source))) return undefined
    await (await import('../src/image-output.js')).checkImageOutput(parsed.output)
    // The writer's modules load beside the scanner's and between slices of the walk instead of
    // before it, so the walk and the hashing start sooner (on the 32k-entry Debian tree, a
    // loaded 2-core machine, 8 runs each: walk started at a median of ~225 ms against ~275 ms).
    const writer = import('../src/write-image-file.js')
    writer.catch(() => undefined)
    // What commands/build.ts and buildImage do for a dump or a tree, in the same order (with
    // the same bar on a terminal).
    const progress = process.stderr.isTTY ? (await import('./progress.js')).progressBar(true) : undefined
    try {
      const root = await (parsed.fromDump ? readDump(parsed) : scanTree(parsed.source, progress))
      progress?.update('write', 0, 1)
      const {writeImageFile} = await writer
      digest = (await writeImageFile(root, parsed.output)).digest
    } finally {
      progress?.stop()
    }
  } catch (err) {
    return failAsBaseCommand(err)
  }
  process.stdout.write(digest + '\n')
  return 0
}

/** Whether buildImage would read `source` as a container image (or refuse it as a bad one). */
async function isImageReference(source: string): Promise<boolean> {
  const {parseImageReference} = await import('../src/oci/reference.js')
  try {
    return parseImageReference(source) !== null
  } catch {
    return true
  }
}

async function readDump(parsed: EarlyBuildArguments): Promise<FsNode> {
  const [{treeFromDump}, v8] = await Promise.all([
    import('../src/build-from-dump.js'),
    import('./v8-tuning.js'),
  ])
  v8.tuneDumpBuild(parsed.source)
  return treeFromDump(parsed.source, {strict: parsed.strict})
}

async function scanTree(source: string, progress: Progress | undefined): Promise<FsNode> {
  const {scanAndHashTree} = await import('../src/build-tree.js')
  const tree = await scanAndHashTree(source, {
    ...(progress && {onProgress: (p) => progress.update(p.phase, p.done, p.total)}),
  })
  return tree.root
}

/** Like buildBeforeOclif, for the arguments after `image dump`. */
export async function dumpBeforeOclif(args: readonly string[]): Promise<number | undefined> {
  const image = readDumpArguments(args)
  if (image === undefined) return undefined
  ignoreEpipe()
  const {readImageDump} = await import('./print-dump.js')
  try {
    const print = await readImageDump(image)
    await print()
    return 0
  } catch (err) {
    return failAsBaseCommand(err)
  }
}
