// Probing and mounting the EFI system partition of a booted device, for src/deploy/device.ts
// (which decides which partition is the ESP; this module only asks the kernel and blkid).
//
//   partitions of a disk        /sys/class/block/DISK/*  + blkid --probe (GPT name, UUID, type)
//   the boot loader's ESP       efivarfs LoaderDevicePartUUID (systemd-boot sets it)
//   where a device is mounted   /proc/self/mountinfo, by device number
//   a private mount             /run/cfsboot/esp-XXXXXX, vfat, unmounted when the verb is done
//
// Why blkid rather than /dev/disk/by-partlabel: udev is not guaranteed (containers, minimal
// images) and the kernel's sysfs names GPT partitions only for some drivers (not loop devices).

import {constants} from 'node:fs'
import {access, mkdir, mkdtemp, readdir, readFile, rmdir, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {CfsError} from '../errors.js'
import {kernelPartitions, underlyingDisks} from './disk.js'
import {needTool} from './exec.js'
import {readMountInfo} from './mountinfo.js'
import {run} from './exec.js'

/** systemd-boot's vendor GUID (LoaderDevicePartUUID and the other Loader* variables). */
const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'
const DEFAULT_EFIVARS = '/sys/firmware/efi/efivars'
/** Parent of private ESP mounts. */
export const ESP_MOUNT_ROOT = '/run/cfsboot'
/**
 * FAT mount options. The 6.12 cloud kernel's vfat default iocharset has no built-in NLS table;
 * iso8859-1 is what it has (machine-facts). umask: the ESP holds kernels, not secrets, but
 * nothing there is for other users to write.
 */
export const VFAT_OPTIONS = 'iocharset=iso8859-1,umask=0022'
const MAX_EFIVAR_BYTES = 4096

export interface PartitionInfo {
  node: string
  devno: string
  /** GPT partition name (PARTLABEL), or null. */
  name: string | null
  /** GPT partition UUID, lower case, or null. */
  uuid: string | null
  /** GPT type GUID, lower case, or null. */
  type: string | null
  /** Filesystem type blkid found (vfat, ext4…), or null. */
  fsType: string | null
}

/** Device number ("major:minor") of the filesystem holding `path`. */
export async function filesystemDevno(path: string): Promise<string> {
  const st = await stat(path, {bigint: true})
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn)
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn)
  return `${major}:${minor}`
}

/** The whole disks below the filesystem holding `path` (empty for tmpfs, overlay…). */
export async function disksUnder(path: string): Promise<string[]> {
  return [...(await underlyingDisks(await filesystemDevno(path)))]
}

async function probe(node: string): Promise<Record<string, string>> {
  const r = await run('blkid', ['--probe', '--output', 'export', node], {reject: false, timeoutMs: 30_000})
  const out: Record<string, string> = {}
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1)
  }
  return out
}

/** Every partition of a whole disk with its GPT name, UUID and type. */
export async function diskPartitions(disk: string): Promise<PartitionInfo[]> {
  await needTool('blkid')
  const out: PartitionInfo[] = []
  for (const p of await kernelPartitions(disk)) {
    const b = await probe(p.node)
    out.push({
      node: p.node,
      devno: p.devno,
      name: b['PART_ENTRY_NAME'] ?? null,
      uuid: b['PART_ENTRY_UUID']?.toLowerCase() ?? null,
      type: b['PART_ENTRY_TYPE']?.toLowerCase() ?? null,
      fsType: b['TYPE'] ?? null,
    })
  }
  return out
}

/** Every partition of every disk the kernel knows (for a PARTUUID lookup). */
export async function allPartitions(): Promise<PartitionInfo[]> {
  const out: PartitionInfo[] = []
  for (const name of await readdir('/sys/block').catch(() => [] as string[])) {
    // ram and zram devices carry no partition tables worth probing.
    if (/^(ram|zram)\d+$/.test(name)) continue
    out.push(...(await diskPartitions(name)))
  }
  return out
}

/**
 * LoaderDevicePartUUID: the partition systemd-boot was loaded from (lower case), or null when
 * the variable is absent (no efivarfs, another boot loader, a host). CFSBOOT_EFIVARS_DIR points
 * elsewhere for tests.
 */
export async function loaderDevicePartUuid(): Promise<string | null> {
  const dir = process.env.CFSBOOT_EFIVARS_DIR ?? DEFAULT_EFIVARS
  try {
    const b = await readFile(join(dir, `LoaderDevicePartUUID-${LOADER_GUID}`))
    if (b.length < 6 || b.length > MAX_EFIVAR_BYTES) return null
    const v = b
      .subarray(4, 4 + ((b.length - 4) & ~1))
      .toString('utf16le')
      .replace(/\0.*$/s, '')
      .trim()
      .toLowerCase()
    return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v) ? v : null
  } catch {
    return null
  }
}

export interface MountOf {
  mountPoint: string
  readOnly: boolean
}

/** Where the filesystem on device `devno` is mounted in this namespace (outermost first). */
export async function mountsOfDevice(devno: string): Promise<MountOf[]> {
  return (await readMountInfo())
    .filter((m) => m.devno === devno)
    .map((m) => ({mountPoint: m.mountPoint, readOnly: m.options.split(',').includes('ro')}))
}

/** Whether a directory (a mount point) can be written: false on a read-only mount. */
export async function isWritable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK)
    return true
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'EROFS' || code === 'EACCES' || code === 'EPERM') return false
    throw err
  }
}

export interface PrivateMount {
  dir: string
  /** Flushes and unmounts the ESP and removes the mount point. */
  release(): Promise<void>
}

/**
 * Mounts an ESP under /run/cfsboot/esp-XXXXXX for one command. A failure is one line naming
 * the device (EESPMOUNT); the mount point is removed again.
 */
export async function mountEspPrivately(
  node: string,
  opts: {readOnly: boolean; fsType?: string | null},
): Promise<PrivateMount> {
  await needTool('mount')
  const root = process.env.CFSBOOT_ESP_MOUNT_ROOT ?? ESP_MOUNT_ROOT
  await mkdir(root, {recursive: true, mode: 0o755})
  const dir = await mkdtemp(join(root, 'esp-'))
  // vfat (and its NLS table) is a module on distribution kernels; mount(8) makes the kernel load
  // it, but a modprobe first gives the clearer error path when modules are missing.
  // An ESP is FAT; another filesystem blkid recognises is mounted as what it is (a boot
  // partition of another kind, or a test on a kernel without FAT).
  const type = opts.fsType && opts.fsType !== 'vfat' ? opts.fsType : 'vfat'
  if (type === 'vfat')
    await run('modprobe', ['-q', 'vfat'], {reject: false, timeoutMs: 30_000}).catch(() => undefined)
  const options = `${opts.readOnly ? 'ro' : 'rw'}${type === 'vfat' ? ',' + VFAT_OPTIONS : ''}`
  const r = await run('mount', ['-t', type, '-o', options, node, dir], {reject: false, timeoutMs: 60_000})
  if (r.exitCode !== 0) {
    await rmdir(dir).catch(() => undefined)
    const why = r.stderr.split('\n').find((l) => l.trim()) ?? `exit code ${r.exitCode}`
    throw new CfsError('EESPMOUNT', `cannot mount the ESP ${node}: ${why.trim()}`, {
      device: node,
    })
  }
  return {
    dir,
    release: async () => {
      // umount flushes the filesystem; FAT has no journal, so this is where entries become durable.
      const u = await run('umount', [dir], {reject: false})
      if (u.exitCode !== 0) await run('umount', ['--lazy', dir], {what: `umount ${dir}`})
      await rmdir(dir).catch(() => undefined)
    },
  }
}
