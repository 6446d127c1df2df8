// `cfsboot prepare --fix`: puts into a tree the parts cfsboot owns — cfsboot itself and a node
// to run it, the health program and unit, a tmpfs on /tmp, /sysroot, and an initramfs with the
// cfsboot module. What belongs to the distribution (a kernel package, fsverity, util-linux) is
// never installed here: the checks name the packages instead.

import {chmod, copyFile, cp, mkdir, readFile, rm, symlink} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {buildInitramfs, Flavour, PACKAGE_ROOT} from '../boot/initramfs.js'
import {InvalidInputError} from '../errors.js'
import {depmodTree, hostNodeVersion, npmCiProduction} from '../system/tree-tools.js'
import {writeFileAtomic} from '../util/fs.js'
import {CheckId, nodeVersionOk} from './checks.js'
import {
  CFSBOOT_DIR,
  CFSBOOT_WRAPPER,
  ETC_UNIT_DIR,
  HEALTH_PROGRAM,
  HEALTH_UNIT,
  SYSTEM_UNIT_DIR,
  TreeFacts,
} from './inspect.js'
import {resolveInTree} from './tree-path.js'

/**
 * What of this package a device needs: what package.json's "files" publishes (the one list of
 * the package's parts), less the docs, plus the manifest and lock file `npm ci` installs from.
 */
export async function packageParts(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {files?: string[]}
  return [...(pkg.files ?? []).filter((f) => f !== 'docs'), 'package.json', 'package-lock.json']
}

/** Where a node is put when the tree has none (or too old a one). */
export const NODE_TARGET = '/usr/local/bin/node'

/** The tmpfs line for trees without a tmp.mount unit (the options systemd's tmp.mount uses). */
export const TMP_FSTAB_LINE = 'tmpfs /tmp tmpfs mode=1777,strictatime,nosuid,nodev,size=50%,nr_inodes=1m 0 0'

export interface FixOptions {
  /** node binary to copy into the tree (default: the one running cfsboot). */
  node?: string
  addDrivers?: string[]
  /** The initramfs's init (cfsboot initramfs --flavour); default shell. */
  flavour?: Flavour
}

/** The host path of directory `path` inside the tree, created (0755) where missing. */
async function ensureDir(tree: string, path: string): Promise<string> {
  let host = tree
  let prefix = ''
  for (const name of path.split('/').filter(Boolean)) {
    prefix += `/${name}`
    const found = await resolveInTree(tree, prefix)
    host = found ?? join(host, name)
    if (!found) await mkdir(host, {mode: 0o755})
  }
  return host
}

/** Host path for a file to (re)write at tree path `path`; its directory is created. */
async function fileIn(tree: string, path: string): Promise<string> {
  return join(await ensureDir(tree, dirname(path)), basename(path))
}

async function link(tree: string, path: string, target: string): Promise<void> {
  const host = await fileIn(tree, path)
  await rm(host, {force: true})
  await symlink(target, host)
}

async function installNode(tree: string, opts: FixOptions): Promise<string> {
  const source = opts.node ?? process.execPath
  const version = source === process.execPath ? process.version : await hostNodeVersion(source)
  if (!nodeVersionOk(version))
    throw new InvalidInputError(
      `--node ${source} is ${version ?? 'not runnable'}; the device needs node >= 20.19`,
    )
  const host = await fileIn(tree, NODE_TARGET)
  await rm(host, {force: true})
  await copyFile(source, host)
  await chmod(host, 0o755)
  return NODE_TARGET
}

async function installCfsboot(tree: string, nodePath: string): Promise<void> {
  const dest = await ensureDir(tree, CFSBOOT_DIR)
  for (const part of await packageParts()) {
    await rm(join(dest, part), {recursive: true, force: true})
    await mkdir(dirname(join(dest, part)), {recursive: true})
    await cp(join(PACKAGE_ROOT, part), join(dest, part), {recursive: true})
  }
  await npmCiProduction(dest)
  await writeWrapper(tree, nodePath)
}

async function writeWrapper(tree: string, nodePath: string): Promise<void> {
  const wrapper = `#!/bin/sh\n# cfsboot, installed by cfsboot prepare --fix (docs/device-image.md)\nexec ${nodePath} ${CFSBOOT_DIR}/bin/run.js "$@"\n`
  await writeFileAtomic(await fileIn(tree, CFSBOOT_WRAPPER), Buffer.from(wrapper), 0o755)
}

async function installHealth(tree: string, systemd: boolean): Promise<void> {
  const templates = join(PACKAGE_ROOT, 'templates', 'health')
  await writeFileAtomic(
    await fileIn(tree, HEALTH_PROGRAM),
    await readFile(join(templates, 'cfsboot-health')),
    0o755,
  )
  if (!systemd) return
  const unit = `${SYSTEM_UNIT_DIR}/${HEALTH_UNIT}`
  await writeFileAtomic(await fileIn(tree, unit), await readFile(join(templates, HEALTH_UNIT)))
  // What `systemctl enable` does for its [Install] section (RequiredBy= and WantedBy=).
  await link(tree, `${ETC_UNIT_DIR}/boot-complete.target.requires/${HEALTH_UNIT}`, unit)
  await link(tree, `${ETC_UNIT_DIR}/multi-user.target.wants/${HEALTH_UNIT}`, unit)
}

async function enableTmp(tree: string, f: TreeFacts): Promise<void> {
  if (f.systemd && f.tmpMountUnit) {
    let unit = f.tmpMountUnit
    if (!unit.startsWith(`${SYSTEM_UNIT_DIR}/`)) {
      // Debian's copy lies outside the unit path: link it in, as its README.Debian says to copy it.
      unit = `${ETC_UNIT_DIR}/tmp.mount`
      await link(tree, unit, f.tmpMountUnit)
    }
    await link(tree, `${ETC_UNIT_DIR}/local-fs.target.wants/tmp.mount`, unit)
    return
  }
  const fstab = await fileIn(tree, '/etc/fstab')
  const old = await readFile(fstab, 'utf8').catch(() => '')
  const sep = old === '' || old.endsWith('\n') ? '' : '\n'
  await writeFileAtomic(
    fstab,
    Buffer.from(
      `${old}${sep}# A writable /tmp on the read-only composefs root (cfsboot prepare)\n${TMP_FSTAB_LINE}\n`,
    ),
  )
}

async function buildTreeInitramfs(tree: string, f: TreeFacts, opts: FixOptions): Promise<void> {
  const k = f.kernel!
  if (!k.modulesDep) await depmodTree(tree, k.kver)
  const kmoddir = (await resolveInTree(tree, k.dir))!
  await buildInitramfs({
    output: join(kmoddir, 'initramfs.img'),
    kmoddir,
    kver: k.kver,
    addDrivers: opts.addDrivers ?? [],
    ...(opts.flavour && {flavour: opts.flavour}),
  })
}

/** Applies the fixes for the failed checks in `failed`; returns those it acted on. */
export async function applyFixes(f: TreeFacts, failed: Set<CheckId>, opts: FixOptions): Promise<CheckId[]> {
  const tree = f.tree
  const done: CheckId[] = []
  if (failed.has('directories')) {
    for (const d of f.missingDirs) await ensureDir(tree, d)
    done.push('directories')
  }
  if (failed.has('kernel') && f.kernel?.bootVmlinuz) {
    const dest = await fileIn(tree, `${f.kernel.dir}/vmlinuz`)
    await copyFile((await resolveInTree(tree, f.kernel.bootVmlinuz))!, dest)
    done.push('kernel')
  }
  let nodePath = f.node && nodeVersionOk(f.node.version) ? f.node.path : null
  if (failed.has('node')) {
    nodePath = await installNode(tree, opts)
    done.push('node')
  }
  if (failed.has('cfsboot')) {
    await installCfsboot(tree, nodePath ?? 'node')
    done.push('cfsboot')
  } else if (failed.has('node') && f.cfsboot.wrapper) {
    await writeWrapper(tree, nodePath ?? 'node') // the wrapper names the node it runs
  }
  if (failed.has('health')) {
    await installHealth(tree, f.systemd)
    done.push('health')
  }
  if (failed.has('tmp')) {
    await enableTmp(tree, f)
    done.push('tmp')
  }
  if (failed.has('initramfs') && f.kernel && (f.kernel.vmlinuz || done.includes('kernel'))) {
    await buildTreeInitramfs(tree, f, opts)
    done.push('initramfs')
  }
  return done
}
