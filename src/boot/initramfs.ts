// `cfsboot initramfs`: an initramfs that boots cfsboot deployments (dracut with the cfsboot
// module, dracut/90cfsboot; what it does at boot is docs/boot.md). Generic, not host-only: the
// same initramfs goes into an image and boots on any machine its drivers cover.

import {stat} from 'node:fs/promises'
import {release} from 'node:os'
import {basename, dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {InvalidInputError} from '../errors.js'
import {runDracut} from '../system/dracut.js'

/** The repository (or installed package) root: this file is dist/src/boot/initramfs.js. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const DRACUT_MODULE_DIR = join(PACKAGE_ROOT, 'dracut', '90cfsboot')
export const DRACUT_CONF = join(PACKAGE_ROOT, 'templates', 'dracut.conf.d', 'cfsboot.conf')

/** dracut modules every cfsboot initramfs has: dracut's shell init and ours. */
export const BASE_MODULES = ['base', 'cfsboot']

const NAME = /^[A-Za-z0-9._+-]{1,128}$/

export interface InitramfsOptions {
  output: string
  /** Kernel release; default: the basename of kmoddir, else the running kernel. */
  kver?: string
  /** lib/modules/KVER of a kernel that is not the installed one. */
  kmoddir?: string
  /** Extra kernel drivers (e.g. virtio_blk for a VM, nvme, ahci). */
  addDrivers?: string[]
  /** Extra dracut modules. */
  addModules?: string[]
}

export interface InitramfsResult {
  output: string
  kver: string
  kmoddir: string | null
  modules: string[]
  drivers: string[]
  bytes: number
}

function checkNames(what: string, names: string[]): string[] {
  const list = names.flatMap((n) => n.split(/[\s,]+/)).filter(Boolean)
  for (const n of list)
    if (!NAME.test(n)) throw new InvalidInputError(`${what}: "${n.slice(0, 80)}" is not a valid name`)
  return list
}

export async function buildInitramfs(opts: InitramfsOptions): Promise<InitramfsResult> {
  const kmoddir = opts.kmoddir === undefined ? null : resolve(opts.kmoddir)
  const kver = opts.kver ?? (kmoddir ? basename(kmoddir) : release())
  if (!NAME.test(kver)) throw new InvalidInputError(`kernel version "${kver.slice(0, 80)}" is not valid`)
  if (kmoddir) {
    const dep = await stat(join(kmoddir, 'modules.dep')).catch(() => null)
    if (!dep?.isFile()) {
      throw new InvalidInputError(`${kmoddir} is not a kernel modules directory (no modules.dep; run depmod)`)
    }
  }
  const output = resolve(opts.output)
  const outDir = await stat(dirname(output)).catch(() => null)
  if (!outDir?.isDirectory()) throw new InvalidInputError(`${dirname(output)} is not a directory`)
  const modules = [...BASE_MODULES, ...checkNames('--add-modules', opts.addModules ?? [])]
  const drivers = checkNames('--add-drivers', opts.addDrivers ?? [])
  await runDracut({
    kver,
    ...(kmoddir && {kmoddir}),
    output,
    moduleDirs: [DRACUT_MODULE_DIR],
    modules,
    drivers,
    conf: DRACUT_CONF,
  })
  return {output, kver, kmoddir, modules, drivers, bytes: (await stat(output)).size}
}
