// Mounting a composefs image: the EROFS metadata image under an overlayfs whose data-only
// lower layer is the objects directory.
//
//   IMAGE ──mount -t erofs -o ro──► /run/cfsboot/mnt/<random>/meta   (staging, private, 0700)
//   overlay -o ro,metacopy=on,redirect_dir=on,lowerdir=META::OBJECTS[,verity=…] ──► MOUNTPOINT
//   then the staging mount is detached and its directory removed.
//
// The legacy option string is enough: `lowerdir=META::OBJECTS` (a data-only lower layer after
// "::", Linux >= 6.5) works on the kernels we target (checked on 6.18); the newer
// `lowerdir+=`/`datadir+=` fsconfig keys only matter for paths containing ',' or ':', which
// we refuse instead, and they need the new mount API that mount(8) 2.38 does not drive.
//
// Why the staging EROFS mount is detached (upstream's mount.composefs does the same with an
// anonymous mount): overlayfs takes its own private clone of every lower layer when it is
// mounted, so the EROFS superblock lives on as long as the overlay does. Leaving the staging
// mount attached would only add a second, visible copy of the image that nothing uses, that
// a user could trip over, and that `umount` would have to find again. Detached, unmounting
// the overlay drops the last reference to the EROFS superblock, which releases the loop
// device (mount(8) sets it up with autoclear), so one umount leaves nothing behind.
//
// The expected digest is checked before anything is mounted. If the image file has fs-verity,
// the kernel's measurement is used (constant time, and the file cannot change afterwards).
// Otherwise the image is first copied into the private staging directory and the copy is
// digested and mounted, so a writer of the original file cannot swap its content between the
// check and the mount. The copy is unlinked once mounted (the mount keeps it alive).

import {randomBytes} from 'node:crypto'
import {constants} from 'node:fs'
import {copyFile, mkdir, readFile, rm, rmdir, stat, unlink} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {CfsError, DigestMismatchError, ExitCode, InvalidInputError, UnsupportedError} from '../errors.js'
import {digestFile} from '../verity/pool.js'
import {run} from './exec.js'
import {measureVerity} from './fsverity.js'
import {kernelHasFsVerity} from './kernel.js'

/** Where staging mounts live while a mount is being set up. */
export const STAGING_ROOT = '/run/cfsboot/mnt'

/** The source name our overlays carry in /proc/mounts, so `umount` can tell them apart. */
export const MOUNT_SOURCE = 'composefs'

export type VerityMode = 'require' | 'maybe' | 'off'

export interface MountOptions {
  image: string
  mountpoint: string
  objects: string
  /** Expected fs-verity digest of the image, 64 hex digits ("sha256:" prefix allowed). */
  digest?: string
  verity: VerityMode
}

export interface MountResult {
  mountpoint: string
  image: string
  objects: string
  /** The image digest that was checked (hex), or null when none was asked for. */
  digest: string | null
  /** How the digest was obtained: the kernel's fs-verity measurement or reading the file. */
  digestSource: 'kernel' | 'userspace' | null
  /** The overlay's verity option as mounted. */
  verity: 'require' | 'off'
  notes: string[]
}

function parseDigest(text: string): Buffer {
  const hex = text.toLowerCase().replace(/^sha256:/, '')
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new InvalidInputError(
      `--digest must be 64 hex digits (an fs-verity SHA-256 digest), got "${text.slice(0, 80)}"`,
    )
  }
  return Buffer.from(hex, 'hex')
}

/** overlayfs splits lowerdir on ':' and options on ','; such paths cannot be passed safely. */
function checkOptionPath(what: string, path: string): void {
  if (/[,:\\\n]/.test(path)) {
    throw new InvalidInputError(
      `${what} path ${path} contains ',', ':' or '\\', which overlayfs options cannot carry`,
    )
  }
}

async function requireKind(what: string, path: string, kind: 'file' | 'dir'): Promise<void> {
  let ok = false
  try {
    const st = await stat(path)
    ok = kind === 'dir' ? st.isDirectory() : st.isFile()
  } catch {
    ok = false
  }
  if (!ok)
    throw new InvalidInputError(`${what} ${path} is not ${kind === 'dir' ? 'a directory' : 'a regular file'}`)
}

/**
 * The overlay's verity option, decided before anything is mounted.
 *
 * `maybe` cannot simply switch verification on: overlayfs fails (EIO) every file whose image
 * entry carries a digest but whose object has no fs-verity. It is switched on when the kernel
 * has fs-verity and the image file itself has it enabled, which is what a deployment that
 * enables fs-verity does for the image and its objects alike.
 */
function chooseVerity(
  mode: VerityMode,
  kernel: boolean | null,
  imageHasVerity: boolean,
  notes: string[],
): 'require' | 'off' {
  if (mode === 'off') return 'off'
  if (mode === 'require') {
    if (kernel === false) {
      throw new UnsupportedError(
        'this kernel has no fs-verity (CONFIG_FS_VERITY): cannot mount with --verity require',
      )
    }
    // Unknown configuration: verity=require fails closed (reading an unverified file gives EIO).
    if (kernel === null) notes.push('kernel configuration not readable; overlayfs enforces verity=require')
    return 'require'
  }
  if (kernel === false) {
    notes.push('this kernel has no fs-verity: file contents are not verified')
    return 'off'
  }
  if (!imageHasVerity) {
    notes.push('the image file has no fs-verity: file contents are not verified (--verity require insists)')
    return 'off'
  }
  return 'require'
}

async function makeStaging(): Promise<string> {
  await mkdir(STAGING_ROOT, {recursive: true, mode: 0o700})
  const dir = join(STAGING_ROOT, randomBytes(8).toString('hex'))
  await mkdir(dir, {mode: 0o700})
  await mkdir(join(dir, 'meta'), {mode: 0o700})
  return dir
}

async function removeStaging(dir: string): Promise<void> {
  await rm(dir, {recursive: true, force: true}).catch(() => undefined)
}

/** Unmounts a path, falling back to a lazy detach if it is busy. */
async function unmountPath(path: string): Promise<void> {
  const r = await run('umount', [path], {reject: false, what: 'umount'})
  if (r.exitCode !== 0) await run('umount', ['--lazy', path], {what: 'umount'})
}

export async function mountComposefs(opts: MountOptions): Promise<MountResult> {
  const image = resolve(opts.image)
  const mountpoint = resolve(opts.mountpoint)
  const objects = resolve(opts.objects)
  const expected = opts.digest === undefined ? null : parseDigest(opts.digest)
  await requireKind('image', image, 'file')
  await requireKind('mount point', mountpoint, 'dir')
  await requireKind('objects directory', objects, 'dir')
  checkOptionPath('objects', objects)

  if (await isMountPoint(mountpoint)) {
    throw new CfsError('EMOUNTED', `${mountpoint} is already a mount point`, ExitCode.BadInput)
  }

  const notes: string[] = []
  const kernel = await kernelHasFsVerity()
  // The image's own fs-verity: the kernel's measurement, when the file has one.
  const measured = kernel === false ? null : await measureVerity(image)
  const verity = chooseVerity(opts.verity, kernel, measured !== null, notes)

  const staging = await makeStaging()
  const meta = join(staging, 'meta')
  let source = image
  let digest: Buffer | null = null
  let digestSource: MountResult['digestSource'] = null
  let metaMounted = false
  try {
    if (expected) {
      let got: Buffer
      if (measured) {
        got = measured
        digestSource = 'kernel'
      } else {
        source = join(staging, 'image.cfs')
        await copyFile(image, source, constants.COPYFILE_EXCL)
        got = Buffer.from(await digestFile(source))
        digestSource = 'userspace'
      }
      digest = got
      if (!got.equals(expected)) {
        throw new DigestMismatchError(
          `image digest mismatch: expected ${expected.toString('hex')}, ${image} has ${got.toString('hex')}`,
        )
      }
    }

    await run('mount', ['-t', 'erofs', '-o', 'ro', source, meta], {what: 'mount (EROFS image)'})
    metaMounted = true
    if (source !== image) await unlink(source)

    const options = ['ro', 'metacopy=on', 'redirect_dir=on', `lowerdir=${meta}::${objects}`]
    if (verity === 'require') options.push('verity=require')
    await run('mount', ['-t', 'overlay', MOUNT_SOURCE, '-o', options.join(','), mountpoint], {
      what: 'mount (overlay)',
    })

    await unmountPath(meta)
    metaMounted = false
  } catch (err) {
    if (metaMounted) await unmountPath(meta).catch(() => undefined)
    await removeStaging(staging)
    throw err
  }
  await removeStaging(staging)
  return {
    mountpoint,
    image,
    objects,
    digest: digest ? digest.toString('hex') : null,
    digestSource,
    verity,
    notes,
  }
}

export interface MountInfoEntry {
  mountPoint: string
  fsType: string
  source: string
  superOptions: string
}

/** /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountInfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

export async function readMountInfo(): Promise<MountInfoEntry[]> {
  const text = await readFile('/proc/self/mountinfo', 'latin1')
  const out: MountInfoEntry[] = []
  for (const line of text.split('\n')) {
    if (!line) continue
    const fields = line.split(' ')
    const sep = fields.indexOf('-')
    if (sep < 0 || fields.length < sep + 4) continue
    out.push({
      mountPoint: unescapeMountInfo(fields[4]!),
      fsType: fields[sep + 1]!,
      source: unescapeMountInfo(fields[sep + 2]!),
      superOptions: fields[sep + 3]!,
    })
  }
  return out
}

/** Whether something is mounted exactly at `path`. */
export async function isMountPoint(path: string): Promise<boolean> {
  const p = resolve(path)
  return (await readMountInfo()).some((m) => m.mountPoint === p)
}

export interface UmountResult {
  mountpoint: string
}

/**
 * Unmounts a composefs mount made by mountComposefs: the overlay, and (after a mount that was
 * interrupted halfway) a staging EROFS mount still attached below it. The loop device goes
 * with the last reference to the image.
 */
export async function umountComposefs(mountpointArg: string): Promise<UmountResult> {
  const mountpoint = resolve(mountpointArg)
  const mounts = await readMountInfo()
  const top = mounts.filter((m) => m.mountPoint === mountpoint).at(-1)
  if (!top) throw new InvalidInputError(`${mountpoint} is not a mount point`)
  if (top.fsType !== 'overlay' || top.source !== MOUNT_SOURCE) {
    throw new InvalidInputError(`${mountpoint} is not a composefs mount (${top.fsType} from ${top.source})`)
  }
  const lower = /(?:^|,)lowerdir=([^,]*)/.exec(top.superOptions)?.[1]?.split(':')[0] ?? ''
  await run('umount', [mountpoint], {what: 'umount'})
  if (lower.startsWith(STAGING_ROOT + '/')) {
    if (mounts.some((m) => m.mountPoint === lower)) await unmountPath(lower)
    await rmdir(lower).catch(() => undefined)
    await rmdir(join(lower, '..')).catch(() => undefined)
  }
  return {mountpoint}
}
