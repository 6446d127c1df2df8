// Where a deployment command works: the physical root and the boot directory (the ESP).
//
// On a host, --sysroot names a mounted physical root and --boot-dir its boot directory
// (default SYSROOT/boot), as before. On a booted cfsboot device no flag is needed:
//
//   physical root   /sysroot (the initramfs moves it there: dracut/90cfsboot/cfsboot-mount.sh)
//   ESP             1. the partition systemd-boot was loaded from (efivar LoaderDevicePartUUID)
//                   2. else the partition named cfsboot-esp (src/install/partition.ts) on the
//                      disk holding the physical root — exactly one, or we refuse
//                   3. else a mounted /boot/efi, /efi or /boot holding cfsboot's boot files
//                   used where it is mounted; mounted privately under /run/cfsboot/esp-XXXXXX
//                   for the command otherwise, and unmounted when it is done.
//
// Why not SYSROOT/boot on a device: the boot loader reads the ESP, a separate FAT partition that
// the running system need not mount. Writing entries to a directory on the root filesystem
// would "succeed" and boot the old deployment again: the one failure this module exists to rule
// out. Every refusal is one line and happens before anything is written.
// CFSBOOT_DEVICE_SYSROOT and CFSBOOT_ESP_CANDIDATES point elsewhere for tests.

import {readdir, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {CfsError} from '../errors.js'
import {ENTRY_PREFIX, ESP_PARTLABEL} from '../boot/contract.js'
import {
  allPartitions,
  diskPartitions,
  disksUnder,
  isWritable,
  loaderDevicePartUuid,
  mountEspPrivately,
  mountsOfDevice,
  PartitionInfo,
} from '../system/esp.js'
import {readMountInfo} from '../system/mountinfo.js'
import {Config, loadConfig} from './config.js'
import {DEFAULT_SYSROOT, Paths, requireSysroot, sysrootPaths} from './paths.js'

/** Where an already mounted ESP is looked for, most specific first. */
export const ESP_MOUNT_CANDIDATES = ['/boot/efi', '/efi', '/boot']

export type Access = 'read' | 'write'

export interface TargetRequest {
  /** --sysroot: host use; without it, the booted device's /sysroot. */
  sysroot?: string | undefined
  bootDir?: string | undefined
  config: string
  /** 'write' for verbs that change state: refuses read-only filesystems up front. */
  access: Access
}

export interface Target {
  paths: Paths
  config: Config
  /** How the boot directory was found (for messages and tests). */
  boot: {dir: string; how: 'flag' | 'sysroot' | 'mounted' | 'private'; device: string | null}
  /** Unmounts a privately mounted ESP; a no-op otherwise. Call it when the verb is done. */
  release(): Promise<void>
}

const errNoEsp = (why: string): CfsError => new CfsError('ENOESP', `no ESP found: ${why}; pass --boot-dir`)

async function isDir(p: string): Promise<boolean> {
  return stat(p).then(
    (s) => s.isDirectory(),
    () => false,
  )
}

/** A directory holding what cfsboot writes to a boot directory (entries, kernels, UKIs). */
async function holdsCfsbootFiles(dir: string): Promise<boolean> {
  if (await isDir(join(dir, 'cfsboot'))) return true
  for (const sub of ['loader/entries', 'EFI/Linux']) {
    const names = await readdir(join(dir, sub)).catch(() => [] as string[])
    if (names.some((n) => n.startsWith(ENTRY_PREFIX))) return true
  }
  return false
}

async function espPartition(sysroot: string): Promise<PartitionInfo | null> {
  const disks = await disksUnder(sysroot)
  const local = (await Promise.all(disks.map((d) => diskPartitions(d)))).flat()
  const uuid = await loaderDevicePartUuid()
  if (uuid) {
    const p = local.find((x) => x.uuid === uuid) ?? (await allPartitions()).find((x) => x.uuid === uuid)
    if (p) return p
  }
  const named = local.filter((p) => p.name === ESP_PARTLABEL)
  if (named.length > 1) {
    throw new CfsError(
      'EESPAMBIGUOUS',
      `two partitions named ${ESP_PARTLABEL} (${named.map((p) => p.node).join(', ')}); pass --boot-dir`,
    )
  }
  return named[0] ?? null
}

/** A mounted /boot/efi, /efi or /boot with cfsboot's files on it, or null. */
async function mountedCandidate(): Promise<{dir: string; devno: string} | null> {
  const candidates = process.env.CFSBOOT_ESP_CANDIDATES?.split(':').filter(Boolean) ?? ESP_MOUNT_CANDIDATES
  const mounts = await readMountInfo()
  const found: {dir: string; devno: string}[] = []
  for (const dir of candidates) {
    const m = mounts.filter((x) => x.mountPoint === dir).at(-1)
    if (m && (await holdsCfsbootFiles(dir)) && !found.some((f) => f.devno === m.devno))
      found.push({dir, devno: m.devno})
  }
  if (found.length > 1) {
    throw new CfsError(
      'EESPAMBIGUOUS',
      `two mounted boot directories hold cfsboot's files (${found.map((f) => f.dir).join(', ')}); pass --boot-dir`,
    )
  }
  return found[0] ?? null
}

async function refuseReadOnly(dir: string, what: string, fix: string): Promise<void> {
  if (!(await isWritable(dir)))
    throw new CfsError('EREADONLY', `${what} ${dir} is read-only; ${fix}`, {path: dir})
}

/** Finds (and where needed mounts) the physical root and the boot directory for one command. */
export async function openTarget(req: TargetRequest): Promise<Target> {
  const config = await loadConfig(req.config)
  const onDevice = req.sysroot === undefined
  const sysroot = req.sysroot ?? process.env.CFSBOOT_DEVICE_SYSROOT ?? DEFAULT_SYSROOT
  const probe = sysrootPaths(sysroot)
  if (onDevice) {
    await requireSysroot(probe).catch(() => {
      throw new CfsError(
        'ENOTDEVICE',
        `${sysroot} is not a cfsboot physical root (not a booted cfsboot system?); on a host pass --sysroot`,
      )
    })
  } else {
    await requireSysroot(probe)
  }
  if (req.access === 'write')
    await refuseReadOnly(
      probe.composefs,
      'the physical root',
      `remount it read-write (mount -o remount,rw ${sysroot})`,
    )

  const done = (
    dir: string,
    how: Target['boot']['how'],
    device: string | null,
    release = async () => {},
  ) => ({
    paths: sysrootPaths(sysroot, dir),
    config,
    boot: {dir, how, device},
    release,
  })
  if (req.bootDir !== undefined) return done(req.bootDir, 'flag', null)
  if (!onDevice) return done(probe.bootDir, 'sysroot', null)

  const part = await espPartition(sysroot)
  if (part) {
    const mounts = await mountsOfDevice(part.devno)
    const rw = mounts.find((m) => !m.readOnly)
    if (rw) return done(rw.mountPoint, 'mounted', part.node)
    if (mounts.length && req.access === 'write') {
      throw new CfsError(
        'EREADONLY',
        `the ESP ${part.node} is mounted read-only at ${mounts[0]!.mountPoint}; remount it read-write`,
      )
    }
    if (mounts.length) return done(mounts[0]!.mountPoint, 'mounted', part.node)
    const m = await mountEspPrivately(part.node, {readOnly: req.access === 'read', fsType: part.fsType})
    return done(m.dir, 'private', part.node, m.release)
  }
  const mounted = await mountedCandidate()
  if (mounted) {
    if (req.access === 'write')
      await refuseReadOnly(mounted.dir, 'the ESP mounted at', 'remount it read-write')
    return done(mounted.dir, 'mounted', null)
  }
  const disks = await disksUnder(sysroot)
  throw errNoEsp(
    `no partition named ${ESP_PARTLABEL} on ${disks.length ? disks.join(', ') : 'the disk of ' + sysroot}, ` +
      `and none of ${ESP_MOUNT_CANDIDATES.join(', ')} is a mounted boot directory with cfsboot's files`,
  )
}

/** Runs `fn` on the target and releases it (unmounts a private ESP) whatever happens. */
export async function withTarget<T>(req: TargetRequest, fn: (t: Target) => Promise<T>): Promise<T> {
  const t = await openTarget(req)
  try {
    return await fn(t)
  } finally {
    await t.release()
  }
}
