// The one way cfsboot runs an external tool. Every call goes through `run`, which turns a
// failure into a CfsError with one line ("mount failed: <first line of stderr>"), and a missing
// tool into an UnsupportedError naming the Debian package that provides it. Nothing above
// src/system/ spawns processes.

import {spawn} from 'node:child_process'

import type {Options} from 'execa'

import {CfsError, UnsupportedError} from '../errors.js'

/**
 * execa is loaded on first use: loading it costs ~0.2 s of CPU and ~16 MiB, more than a whole
 * `build` of a small tree, and the build's one tool (getfattr, through spawnStreaming) does
 * without it.
 */
let execaModule: Promise<typeof import('execa')> | undefined
const loadExeca = (): Promise<typeof import('execa')> => (execaModule ??= import('execa'))

/**
 * The Debian package that ships each tool we call, for "not installed" messages (and the list
 * .ci/run installs). The one table: a new tool goes here.
 */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  mount: 'mount',
  umount: 'mount',
  losetup: 'mount',
  getfattr: 'attr',
  setfattr: 'attr',
  fsverity: 'fsverity',
  'fsck.erofs': 'erofs-utils',
  'mkfs.erofs': 'erofs-utils',
  flock: 'util-linux',
  partx: 'util-linux',
  blkid: 'util-linux',
  sfdisk: 'fdisk',
  'mkfs.ext4': 'e2fsprogs',
  debugfs: 'e2fsprogs',
  'mkfs.vfat': 'dosfstools',
  mcopy: 'mtools',
  mdir: 'mtools',
  mdel: 'mtools',
  mdeltree: 'mtools',
  objcopy: 'binutils',
  sbsign: 'sbsigntool',
  sbverify: 'sbsigntool',
  dracut: 'dracut-core',
  lsinitrd: 'dracut-core',
  depmod: 'kmod',
  chroot: 'coreutils',
  sync: 'coreutils',
  npm: 'npm',
}

export interface RunOptions {
  /** What the error message calls the step ("mount failed: …"); defaults to the tool's name. */
  what?: string
  /** Bytes or text fed to stdin. */
  input?: string | Uint8Array
  /** Return non-zero exits instead of throwing (for probes). */
  reject?: boolean
  /** Give stdout as a Buffer (binary output, non-UTF-8 names). */
  binary?: boolean
  /** Extra environment variables. */
  env?: Record<string, string>
  /** Working directory of the tool. */
  cwd?: string
  /** Kill the tool after this many milliseconds (a hung mount must not hang us). */
  timeoutMs?: number
}

export interface RunResult<Out extends string | Buffer = string> {
  stdout: Out
  stderr: string
  exitCode: number
}

/** Default time limit for a tool; mounts and probes finish in well under a second. */
export const DEFAULT_TOOL_TIMEOUT_MS = 10 * 60 * 1000

function baseOptions(opts: RunOptions): Options {
  return {
    reject: false,
    stripFinalNewline: true,
    timeout: opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS,
    // Tools' messages must be parseable and English whatever the user's locale.
    env: {LC_ALL: 'C', ...opts.env},
    ...(opts.input !== undefined && {input: opts.input}),
    ...(opts.cwd !== undefined && {cwd: opts.cwd}),
  }
}

function missingTool(cmd: string): UnsupportedError {
  const pkg = TOOL_PACKAGES[cmd]
  return new UnsupportedError(`${cmd} is not installed${pkg ? ` (Debian package ${pkg})` : ''}`, {tool: cmd})
}

/** The first non-empty line of a tool's message. */
export function firstLine(text: string): string {
  for (const line of text.split('\n')) if (line.trim()) return line.trim()
  return ''
}

type Settled = {
  exitCode?: number | undefined
  failed: boolean
  code?: string | undefined
  timedOut?: boolean
  shortMessage?: string
  stdout: unknown
  stderr: unknown
}

function toResult<Out extends string | Buffer>(cmd: string, r: Settled, opts: RunOptions): RunResult<Out> {
  if (r.code === 'ENOENT' && r.exitCode === undefined) throw missingTool(cmd)
  const stderr = typeof r.stderr === 'string' ? r.stderr : Buffer.from(r.stderr as Uint8Array).toString()
  const exitCode = r.exitCode ?? -1
  if (r.failed && opts.reject !== false) {
    const what = opts.what ?? cmd
    const detail = r.timedOut
      ? `timed out after ${Math.round((opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS) / 1000)} s`
      : firstLine(stderr) || firstLine(r.shortMessage ?? '') || `exit code ${exitCode}`
    throw new CfsError('ETOOL', `${what} failed: ${detail}`, {cmd, exitCode})
  }
  return {stdout: r.stdout as Out, stderr, exitCode}
}

/** Runs a tool to completion. Throws a one-line CfsError when it fails (unless `reject: false`). */
export async function run(
  cmd: string,
  args: readonly string[],
  opts?: RunOptions & {binary?: false},
): Promise<RunResult<string>>
export async function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions & {binary: true},
): Promise<RunResult<Buffer>>
export async function run(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<RunResult<string | Buffer>> {
  const {execa} = await loadExeca()
  const r = await execa(cmd, args, {
    ...baseOptions(opts),
    ...(opts.binary && {encoding: 'buffer' as const, stdout: 'pipe', stderr: 'pipe'}),
  })
  const out = toResult<string | Buffer>(cmd, r as Settled, opts)
  if (opts.binary) out.stdout = Buffer.from(out.stdout as unknown as Uint8Array)
  return out
}

/**
 * Starts a tool whose (binary) stdout the caller reads as a stream, for outputs too large to
 * buffer. `finish()` waits for it and throws like `run` when it failed. Plain child_process
 * (what execa does for this case, with the same environment, time limit and errors), so that a
 * caller with no other tool to run does not load execa.
 */
export function spawnStreaming(
  cmd: string,
  args: readonly string[],
  opts: RunOptions = {},
): {stdout: NodeJS.ReadableStream; finish: () => Promise<void>} {
  const sub = spawn(cmd, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {...process.env, LC_ALL: 'C', ...opts.env},
    ...(opts.cwd !== undefined && {cwd: opts.cwd}),
  })
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    sub.kill()
  }, opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS)
  const stderr: Buffer[] = []
  sub.stderr.on('data', (b: Buffer) => stderr.push(b))
  // Listening from the start: a tool that cannot be started reports 'error' and may never 'close'.
  const ended = new Promise<{code: number | null; signal: string | null; error?: NodeJS.ErrnoException}>(
    (resolve) => {
      sub.once('error', (error) => resolve({code: null, signal: null, error}))
      sub.once('close', (code, signal) => resolve({code, signal}))
    },
  ).finally(() => clearTimeout(timer))
  return {
    stdout: sub.stdout,
    finish: async () => {
      const r = await ended
      toResult(
        cmd,
        {
          exitCode: r.code ?? undefined,
          failed: r.code !== 0,
          code: r.error?.code,
          timedOut,
          shortMessage: r.error?.message ?? (r.signal ? `killed by ${r.signal}` : ''),
          stdout: undefined,
          stderr: Buffer.concat(stderr).toString(),
        },
        opts,
      )
    },
  }
}

const whichCache = new Map<string, string | null>()

/** The absolute path of a tool on $PATH, or null. */
export async function which(tool: string): Promise<string | null> {
  if (whichCache.has(tool)) return whichCache.get(tool)!
  const {execa} = await loadExeca()
  const r = await execa('sh', ['-c', 'command -v "$1"', 'sh', tool], {reject: false})
  const found =
    r.exitCode === 0 && typeof r.stdout === 'string' && r.stdout.startsWith('/') ? r.stdout.trim() : null
  whichCache.set(tool, found)
  return found
}

/** Throws an UnsupportedError naming the Debian package when a tool is not on $PATH. */
export async function needTool(tool: string): Promise<void> {
  if (!(await which(tool))) throw missingTool(tool)
}
