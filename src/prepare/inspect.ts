// What `cfsboot prepare` looks at in a root filesystem tree, gathered once: the facts the checks
// (checks.ts) judge and the fixes (fix.ts) act on. Nothing here changes the tree.

import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {PACKAGE_ROOT} from '../boot/initramfs.js'
import {MODULES_DIR} from '../deploy/image-files.js'
import {initramfsPaths, nodeVersion} from '../system/tree-tools.js'
import {cmpBytes} from '../tree/node.js'
import {resolveInTree, treeDir, treeFile, whichInTree} from './tree-path.js'

/** Where cfsboot lives in a device image (the health program shares the directory). */
export const CFSBOOT_DIR = '/usr/lib/cfsboot'
export const CFSBOOT_WRAPPER = '/usr/bin/cfsboot'
export const HEALTH_PROGRAM = `${CFSBOOT_DIR}/cfsboot-health`
export const HEALTH_UNIT = 'cfsboot-health.service'
export const SYSTEM_UNIT_DIR = '/usr/lib/systemd/system'
export const ETC_UNIT_DIR = '/etc/systemd/system'
/** Debian ships tmp.mount outside the unit path, not enabled; other distributions in it. */
export const TMP_MOUNT_UNITS = ['/usr/share/systemd/tmp.mount', `${SYSTEM_UNIT_DIR}/tmp.mount`]

/** Tools cfsboot runs on the device, and the Debian package of each. */
export const DEVICE_TOOLS: Readonly<Record<string, string>> = {
  fsverity: 'fsverity',
  mount: 'mount',
  umount: 'mount',
  losetup: 'mount',
  flock: 'util-linux',
}

export interface TreeKernel {
  kver: string
  /** Tree path of the modules directory, /usr/lib/modules/KVER. */
  dir: string
  vmlinuz: boolean
  initramfs: boolean
  /** Debian's kernel packages put the kernel in /boot/vmlinuz-KVER; its tree path, if so. */
  bootVmlinuz: string | null
  modulesDep: boolean
}

export interface TreeFacts {
  tree: string
  /** The kernel the image will boot: the newest KVER with a kernel (vmlinuz, or one in /boot). */
  kernel: TreeKernel | null
  /** What the kernel's initramfs.img holds: null when there is none. */
  initramfs: {cfsboot: boolean; flavour: 'shell' | 'systemd' | null} | null
  missingDirs: string[]
  node: {path: string; version: string | null} | null
  missingTools: string[]
  systemd: boolean
  init: boolean
  /** How /tmp becomes writable: 'tmp.mount', 'fstab', or null. */
  tmp: 'tmp.mount' | 'fstab' | null
  /** The tmp.mount unit that can be enabled, when there is one. */
  tmpMountUnit: string | null
  health: {program: boolean; unit: boolean; enabled: boolean}
  /** `ours`: the version of the cfsboot running prepare (what --fix installs). */
  cfsboot: {version: string | null; ours: string; wrapper: boolean; dependencies: boolean}
}

async function kernels(tree: string): Promise<TreeKernel[]> {
  const modules = await treeDir(tree, MODULES_DIR)
  const names = modules ? await readdir(modules) : []
  const found: TreeKernel[] = []
  for (const kver of names.sort(cmpBytes)) {
    const dir = `${MODULES_DIR}/${kver}`
    if (!(await treeDir(tree, dir))) continue
    const boot = `/boot/vmlinuz-${kver}`
    found.push({
      kver,
      dir,
      vmlinuz: (await treeFile(tree, `${dir}/vmlinuz`)) !== null,
      initramfs: (await treeFile(tree, `${dir}/initramfs.img`)) !== null,
      bootVmlinuz: (await treeFile(tree, boot)) ? boot : null,
      modulesDep: (await treeFile(tree, `${dir}/modules.dep`)) !== null,
    })
  }
  return found
}

/** The same rule as deploy's findKernel (the newest version by byte order), among kernels present. */
function chooseKernel(list: TreeKernel[]): TreeKernel | null {
  const withKernel = list.filter((k) => k.vmlinuz || k.bootVmlinuz)
  return withKernel.at(-1) ?? null
}

async function initramfsFacts(tree: string, k: TreeKernel | null): Promise<TreeFacts['initramfs']> {
  if (!k?.initramfs) return null
  const host = (await treeFile(tree, `${k.dir}/initramfs.img`))!
  const paths = await initramfsPaths(host)
  // Both flavours carry the shared library; the systemd flavour also its unit.
  const cfsboot = paths.some((p) => /(^|\/)cfsboot-lib\.sh$/.test(p))
  const systemdUnit = paths.some((p) => /(^|\/)cfsboot-setup-root\.service$/.test(p))
  return {cfsboot, flavour: cfsboot ? (systemdUnit ? 'systemd' : 'shell') : null}
}

async function anyFile(tree: string, paths: string[]): Promise<string | null> {
  for (const p of paths) if (await treeFile(tree, p)) return p
  return null
}

async function tmpFacts(tree: string): Promise<TreeFacts['tmp']> {
  const wants = ['/etc/systemd/system', SYSTEM_UNIT_DIR].map((d) => `${d}/local-fs.target.wants/tmp.mount`)
  if (await anyFile(tree, wants)) return 'tmp.mount'
  const fstab = await treeFile(tree, '/etc/fstab')
  const text = fstab ? await readFile(fstab, 'utf8') : ''
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/)
    if (!f[0]?.startsWith('#') && f[1] === '/tmp') return 'fstab'
  }
  return null
}

async function cfsbootFacts(tree: string): Promise<TreeFacts['cfsboot']> {
  const pkg = await treeFile(tree, `${CFSBOOT_DIR}/package.json`)
  let version: string | null = null
  if (pkg) {
    const json = JSON.parse(await readFile(pkg, 'utf8').catch(() => '{}')) as {
      name?: string
      version?: string
    }
    if (json.name === 'cfsboot' && (await treeFile(tree, `${CFSBOOT_DIR}/bin/run.js`)))
      version = json.version ?? '?'
  }
  const ours = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {version: string}
  return {
    version,
    ours: ours.version,
    wrapper: (await treeFile(tree, CFSBOOT_WRAPPER, true)) !== null,
    dependencies: (await treeFile(tree, `${CFSBOOT_DIR}/node_modules/@oclif/core/package.json`)) !== null,
  }
}

export async function inspectTree(tree: string): Promise<TreeFacts> {
  const kernel = chooseKernel(await kernels(tree))
  const missingDirs: string[] = []
  for (const d of ['/etc', '/var', '/sysroot']) if (!(await treeDir(tree, d))) missingDirs.push(d)
  const nodePath = await whichInTree(tree, 'node')
  const missingTools: string[] = []
  for (const t of Object.keys(DEVICE_TOOLS)) if (!(await whichInTree(tree, t))) missingTools.push(t)
  const unitIn = (name: string): string[] => [ETC_UNIT_DIR, SYSTEM_UNIT_DIR].map((d) => `${d}/${name}`)
  return {
    tree,
    kernel,
    initramfs: await initramfsFacts(tree, kernel),
    missingDirs,
    node: nodePath ? {path: nodePath, version: await nodeVersion(tree, nodePath)} : null,
    missingTools,
    systemd: (await anyFile(tree, ['/usr/lib/systemd/systemd', '/lib/systemd/systemd'])) !== null,
    init: (await resolveInTree(tree, '/sbin/init')) !== null,
    tmp: await tmpFacts(tree),
    tmpMountUnit: await anyFile(tree, TMP_MOUNT_UNITS),
    health: {
      program: (await treeFile(tree, HEALTH_PROGRAM, true)) !== null,
      unit: (await anyFile(tree, unitIn(HEALTH_UNIT))) !== null,
      enabled: (await anyFile(tree, unitIn(`multi-user.target.wants/${HEALTH_UNIT}`))) !== null,
    },
    cfsboot: await cfsbootFacts(tree),
  }
}
