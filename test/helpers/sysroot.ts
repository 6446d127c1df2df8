// Sysroots for the deployment tests: a skeleton in a temp dir, the CLI run against it, snapshots
// of everything on disk (to prove "nothing changed"), schema validation and a completeness check
// of a deployment (what the initramfs needs to boot it).
import {spawn} from 'node:child_process'
import {createHash} from 'node:crypto'
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {Ajv, type ValidateFunction} from 'ajv'

import {initSysroot} from '../../src/deploy/deploy.js'
import {readDeployment} from '../../src/deploy/deployments.js'
import {readEntries} from '../../src/deploy/entries.js'
import {loadImage, objectRefs} from '../../src/image/load.js'
import {deploymentDir, imagePath, Paths, sysrootPaths} from '../../src/deploy/paths.js'
import {fsverityDigest} from '../../src/verity/merkle.js'

/** The repository root (this file runs from dist/test/helpers/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const RUN_JS = join(REPO, 'bin', 'run.js')

export interface Sysroot {
  /** The temp dir holding everything below. */
  dir: string
  sysroot: string
  config: string
  /** CFSBOOT_RUN_DIR: write booted.json here to simulate a booted deployment. */
  runDir: string
  paths: Paths
}

/** A fresh cfsboot sysroot skeleton in a new temp dir (or under `parent`). */
export async function makeSysroot(opts: {parent?: string; config?: string} = {}): Promise<Sysroot> {
  const dir = mkdtempSync(join(opts.parent ?? tmpdir(), 'cfsboot-sysroot-'))
  return await sysrootIn(dir, opts.config)
}

/** Same, in an existing directory. */
export async function sysrootIn(dir: string, config = ''): Promise<Sysroot> {
  const s = describeSysroot(dir)
  await initSysroot(s.paths)
  writeFileSync(s.config, config)
  return s
}

/** The paths of a sysroot made by makeSysroot (e.g. after `cp -a` to a new dir). */
export function describeSysroot(dir: string): Sysroot {
  const sysroot = join(dir, 'sysroot')
  return {
    dir,
    sysroot,
    config: join(dir, 'cfsboot.conf'),
    runDir: join(dir, 'run'),
    paths: sysrootPaths(sysroot),
  }
}

export function setBooted(s: Sysroot, digest: string | null): void {
  mkdirSync(s.runDir, {recursive: true})
  if (digest === null) rmSync(join(s.runDir, 'booted.json'), {force: true})
  else writeFileSync(join(s.runDir, 'booted.json'), JSON.stringify({digest}))
}

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** The environment every CLI run gets: no booted record unless the test writes one. */
export function cliEnv(s: Sysroot, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    CFSBOOT_RUN_DIR: s.runDir,
    CFSBOOT_CMDLINE: join(s.dir, 'cmdline'),
    NO_COLOR: '1',
    ...extra,
  }
}

export interface Running {
  pid: number
  /** Resolves when the process exits. */
  done: Promise<CliResult>
  /** SIGKILL to the whole process group (the command and any tool it runs). */
  kill(): void
}

/** Starts `node bin/run.js <cmd> --sysroot S --config C ...args` in its own process group. */
export function startCli(s: Sysroot, args: string[], env: Record<string, string> = {}): Running {
  const [cmd, ...rest] = args
  const child = spawn(
    process.execPath,
    [RUN_JS, ...cmd!.split(' '), '--sysroot', s.sysroot, '--config', s.config, ...rest],
    {cwd: REPO, env: cliEnv(s, env), stdio: ['ignore', 'pipe', 'pipe'], detached: true},
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const done = new Promise<CliResult>((res, rej) => {
    child.on('error', rej)
    child.on('close', (code, signal) => res({code, signal, stdout, stderr}))
  })
  return {
    pid: child.pid!,
    done,
    kill() {
      try {
        process.kill(-child.pid!, 'SIGKILL')
      } catch {
        // already gone
      }
    },
  }
}

export function cli(s: Sysroot, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(s, args, env).done
}

/** Runs with --json and parses stdout. */
export async function cliJson<T = unknown>(
  s: Sysroot,
  args: string[],
  env: Record<string, string> = {},
): Promise<{r: CliResult; json: T}> {
  const r = await cli(s, [...args, '--json'], env)
  let json: T
  try {
    json = JSON.parse(r.stdout) as T
  } catch {
    throw new Error(`${args.join(' ')} --json printed no JSON (exit ${r.code}): ${r.stdout} ${r.stderr}`)
  }
  return {r, json}
}

// --- snapshots -------------------------------------------------------------------------------

/** path → "type size mode sha256" for everything below `root` (symlinks not followed). */
export function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>()
  const visit = (p: string, rel: string): void => {
    const st = lstatSync(p)
    if (st.isDirectory()) {
      out.set(rel + '/', `dir ${(st.mode & 0o7777).toString(8)}`)
      for (const name of readdirSync(p).sort()) visit(join(p, name), rel ? `${rel}/${name}` : name)
    } else if (st.isSymbolicLink()) {
      out.set(rel, `link ${readlinkSync(p)}`)
    } else if (st.isFile()) {
      const h = createHash('sha256').update(readFileSync(p)).digest('hex')
      out.set(rel, `file ${st.size} ${(st.mode & 0o7777).toString(8)} ${h}`)
    } else {
      out.set(rel, `other ${st.mode.toString(8)} ${st.rdev}`)
    }
  }
  if (existsSync(root)) visit(root, '')
  return out
}

/** Human-readable differences between two snapshots ([] when equal). */
export function diffSnapshots(before: Map<string, string>, after: Map<string, string>): string[] {
  const diffs: string[] = []
  for (const [k, v] of before) {
    if (!after.has(k)) diffs.push(`removed ${k}`)
    else if (after.get(k) !== v) diffs.push(`changed ${k}`)
  }
  for (const k of after.keys()) if (!before.has(k)) diffs.push(`added ${k}`)
  return diffs
}

// --- schemas ---------------------------------------------------------------------------------

const ajv = new Ajv({allErrors: true, strict: true})
const validators = new Map<string, ValidateFunction>()

/** Validates `data` against docs/schemas/<name>.json; returns the errors as text ('' if valid). */
export function schemaErrors(name: string, data: unknown): string {
  let v = validators.get(name)
  if (!v) {
    v = ajv.compile(JSON.parse(readFileSync(join(REPO, 'docs', 'schemas', `${name}.json`), 'utf8')) as object)
    validators.set(name, v)
  }
  return v(data) ? '' : ajv.errorsText(v.errors)
}

// --- completeness ----------------------------------------------------------------------------

/**
 * Why the deployment `digest` could not boot ([] when it could): its image is present with the
 * right digest, every object it references is present with its content's digest, and its kernel
 * and initramfs are in the boot dir.
 */
export async function incomplete(paths: Paths, digest: string): Promise<string[]> {
  const problems: string[] = []
  let d
  try {
    d = await readDeployment(deploymentDir(paths, digest))
  } catch (err) {
    return [`deployment.json: ${(err as Error).message}`]
  }
  try {
    const img = await loadImage(imagePath(paths, digest))
    if (img.digest !== digest) problems.push(`image has digest ${img.digest}`)
    for (const r of objectRefs(img.root)) {
      const p = join(paths.objects, r.path)
      if (!existsSync(p)) problems.push(`object ${r.path} missing`)
      else if (fsverityDigest(readFileSync(p)).toString('hex') !== r.path.replace('/', ''))
        problems.push(`object ${r.path} corrupt`)
    }
  } catch (err) {
    problems.push(`image: ${(err as Error).message}`)
  }
  for (const f of ['vmlinuz', 'initramfs.img'])
    if (!existsSync(join(paths.bootDir, d.kernel.dir, f))) problems.push(`kernel file ${f} missing`)
  return problems
}

/** The digest the boot loader would boot (first entry in boot order not out of tries), or null. */
export async function defaultDigest(paths: Paths): Promise<string | null> {
  const {entries} = await readEntries(paths.entries)
  return entries.find((e) => e.triesLeft !== 0)?.digest ?? null
}

// --- error output ----------------------------------------------------------------------------

/**
 * The logical lines a failed command printed on stderr. oclif wraps a long error message at the
 * terminal width and continues it on lines starting with " ›   "; those are joined back.
 */
export function errorLines(stderr: string): string[] {
  const lines: string[] = []
  for (const line of stderr.split('\n')) {
    if (!line.trim()) continue
    const continuation = line.startsWith(' ›   ') && !line.startsWith(' ›   Error:') && lines.length > 0
    if (continuation) lines[lines.length - 1] += ' ' + line.slice(5).trim()
    else lines.push(line.trim())
  }
  return lines
}

/** Why `r` is not "one clear error line, exit `code`, no stack trace" ('' when it is). */
export function notOneClearError(r: CliResult, code: number): string {
  const lines = errorLines(r.stderr)
  if (r.code !== code) return `exit ${r.code} (signal ${r.signal}), expected ${code}; stderr: ${r.stderr}`
  if (lines.length !== 1) return `expected one error line, got ${lines.length}: ${r.stderr}`
  if (/^\s+at /m.test(r.stderr) || /\bat .*\.js:\d+/.test(r.stderr)) return `stack trace: ${r.stderr}`
  return ''
}
