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

/**
 * The init an initramfs runs, and the dracut modules that make it: dracut's shell init, or
 * systemd (dracut's systemd, systemd-initrd and dracut-systemd modules), each with ours. The
 * cfsboot module picks its mount hook or its systemd unit by which one is included.
 */
export const FLAVOURS = ['shell', 'systemd'] as const
export type Flavour = (typeof FLAVOURS)[number]
export const FLAVOUR_MODULES: Readonly<Record<Flavour, readonly string[]>> = {
  shell: ['base', 'cfsboot'],
  systemd: ['systemd', 'systemd-initrd', 'dracut-systemd', 'base', 'cfsboot'],
}

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
  /** Default shell. */
  flavour?: Flavour
}

export interface InitramfsResult {
  output: string
  kver: string
  kmoddir: string | null
  flavour: Flavour
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
  const flavour = opts.flavour ?? 'shell'
  if (!FLAVOURS.includes(flavour))
    throw new InvalidInputError(`flavour "${String(flavour).slice(0, 40)}" is not shell or systemd`)
  const extra = checkNames('--add-modules', opts.addModules ?? [])
  const modules = [...FLAVOUR_MODULES[flavour], ...extra.filter((m) => !FLAVOUR_MODULES[flavour].includes(m))]
  if (
    flavour === 'shell' &&
    extra.some((m) => m === 'systemd' || m.startsWith('systemd-') || m === 'dracut-systemd')
  )
    throw new InvalidInputError('--add-modules: systemd modules need --flavour systemd')
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
  return {output, kver, kmoddir, flavour, modules, drivers, bytes: (await stat(output)).size}
}
