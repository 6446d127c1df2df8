// Running dracut with cfsboot's module, without installing anything into the system.
//
// dracut looks for modules in $dracutbasedir/modules.d. Rather than copying our module into
// /usr/lib/dracut/modules.d (a change to the machine that outlives the command, needs root and
// could be a different version than the one this cfsboot ships), each run builds a private
// "shadow" base directory: symlinks to everything in the system's dracut directory, except
// modules.d, which is a directory of symlinks to the system's modules plus ours. dracut honours
// the dracutbasedir environment variable, so the system's files are used as they are.

import {mkdir, mkdtemp, readdir, rm, symlink} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {basename, join} from 'node:path'

import {CfsError} from '../errors.js'
import {needTool, run} from './exec.js'

/** Where Debian's dracut-core keeps its modules and helpers. */
export const SYSTEM_DRACUT_DIR = '/usr/lib/dracut'

/** dracut builds in about a second here; a minute is far beyond any healthy run. */
export const DRACUT_TIMEOUT_MS = 5 * 60 * 1000

export interface DracutRun {
  kver: string
  /** Kernel modules directory (lib/modules/KVER) when the kernel is not the installed one. */
  kmoddir?: string
  output: string
  /** Our module directories (e.g. dracut/90cfsboot), added to the system's. */
  moduleDirs: string[]
  /** dracut modules to include (--modules: only these and their dependencies). */
  modules: string[]
  /** Kernel drivers to add (--add-drivers). */
  drivers: string[]
  /** The one configuration file to read (instead of /etc/dracut.conf and dracut.conf.d). */
  conf: string
}

async function shadowBaseDir(moduleDirs: string[]): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), 'cfsboot-dracut-'))
  const ours = new Set(moduleDirs.map((d) => basename(d)))
  const ourNames = new Set([...ours].map((d) => d.replace(/^\d\d/, '')))
  for (const name of await readdir(SYSTEM_DRACUT_DIR)) {
    if (name !== 'modules.d') await symlink(join(SYSTEM_DRACUT_DIR, name), join(base, name))
  }
  const modules = join(base, 'modules.d')
  await mkdir(modules)
  for (const name of await readdir(join(SYSTEM_DRACUT_DIR, 'modules.d'))) {
    // A copy of our module installed system-wide is replaced by the one we ship.
    if (ourNames.has(name.replace(/^\d\d/, ''))) continue
    await symlink(join(SYSTEM_DRACUT_DIR, 'modules.d', name), join(modules, name))
  }
  for (const dir of moduleDirs) await symlink(dir, join(modules, basename(dir)))
  return base
}

/** Runs dracut; throws a one-line error with dracut's first complaint when it fails. */
export async function runDracut(opts: DracutRun): Promise<{log: string}> {
  await needTool('dracut')
  const base = await shadowBaseDir(opts.moduleDirs)
  const emptyConfDir = join(base, 'no-conf.d')
  await mkdir(emptyConfDir)
  try {
    const args = [
      '--force',
      '--no-hostonly',
      '--conf',
      opts.conf,
      '--confdir',
      emptyConfDir,
      '--kver',
      opts.kver,
      ...(opts.kmoddir ? ['--kmoddir', opts.kmoddir] : []),
      '--modules',
      opts.modules.join(' '),
      ...(opts.drivers.length ? ['--add-drivers', opts.drivers.join(' ')] : []),
      opts.output,
    ]
    const r = await run('dracut', args, {
      what: 'dracut',
      env: {dracutbasedir: base},
      timeoutMs: DRACUT_TIMEOUT_MS,
      reject: false,
    })
    if (r.exitCode !== 0) {
      // dracut logs progress on stderr too; its errors are the lines that say so.
      const err = r.stderr.split('\n').find((l) => /error|fatal|cannot|failed|not found/i.test(l))
      const detail = (err ?? r.stderr.split('\n').at(-1) ?? '').trim() || `exit code ${r.exitCode}`
      throw new CfsError('EDRACUT', `dracut failed: ${detail}`)
    }
    return {log: r.stderr}
  } finally {
    await rm(base, {recursive: true, force: true})
  }
}
