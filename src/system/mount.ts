// Mounting a composefs image: the EROFS metadata image under an overlayfs whose data-only
// lower layer is the objects directory. This is the mechanism only; what to check first (the
// image's digest) and whether to ask overlayfs for verity are decided in src/image/mount.ts.
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

import {randomBytes} from 'node:crypto'
import {mkdir, rm, rmdir, unlink} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {run} from './exec.js'
import {readMountInfo} from './mountinfo.js'

/** Where staging mounts live while a mount is being set up. */
export const STAGING_ROOT = '/run/cfsboot/mnt'

/** The source name our overlays carry in /proc/mounts, so `umount` can tell them apart. */
export const MOUNT_SOURCE = 'composefs'

/** overlayfs splits lowerdir on ':' and options on ','; such paths cannot be passed safely. */
export function checkOverlayPath(what: string, path: string): void {
  if (/[,:\\\n]/.test(path)) {
    throw new InvalidInputError(
      `${what} path ${path} contains ',', ':' or '\\', which overlayfs options cannot carry`,
    )
  }
}

/**
 * Runs `fn` with a fresh private staging directory (0700) under STAGING_ROOT, and removes the
 * directory afterwards, whether `fn` succeeded or not.
 */
export async function withStaging<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  await mkdir(STAGING_ROOT, {recursive: true, mode: 0o700})
  const dir = join(STAGING_ROOT, randomBytes(8).toString('hex'))
  await mkdir(dir, {mode: 0o700})
  await mkdir(join(dir, 'meta'), {mode: 0o700})
  try {
    return await fn(dir)
  } finally {
    await rm(dir, {recursive: true, force: true}).catch(() => undefined)
  }
}

/** Unmounts a path, falling back to a lazy detach if it is busy. */
async function unmountPath(path: string): Promise<void> {
  const r = await run('umount', [path], {reject: false, what: 'umount'})
  if (r.exitCode !== 0) await run('umount', ['--lazy', path], {what: 'umount'})
}

export interface OverlayMount {
  /** The EROFS image file to mount (a private copy inside `staging` may be unlinked once mounted). */
  source: string
  objects: string
  mountpoint: string
  verity: 'require' | 'off'
}

/**
 * Mounts `m.source` read-only on STAGING/meta, the overlay over it and `m.objects` on
 * `m.mountpoint`, and detaches the staging mount. A source inside `staging` is unlinked once
 * mounted (the mount keeps it alive). On failure nothing stays mounted.
 */
export async function mountImageOverlay(staging: string, m: OverlayMount): Promise<void> {
  const meta = join(staging, 'meta')
  let metaMounted = false
  try {
    await run('mount', ['-t', 'erofs', '-o', 'ro', m.source, meta], {what: 'mount (EROFS image)'})
    metaMounted = true
    if (m.source.startsWith(staging + '/')) await unlink(m.source)

    const options = ['ro', 'metacopy=on', 'redirect_dir=on', `lowerdir=${meta}::${m.objects}`]
    if (m.verity === 'require') options.push('verity=require')
    await run('mount', ['-t', 'overlay', MOUNT_SOURCE, '-o', options.join(','), m.mountpoint], {
      what: 'mount (overlay)',
    })

    await unmountPath(meta)
    metaMounted = false
  } finally {
    if (metaMounted) await unmountPath(meta).catch(() => undefined)
  }
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
