// `cfsboot mount`: what is checked before a composefs image is mounted, and whether overlayfs is
// asked to verify file contents. The mount itself is src/system/mount.ts.
//
// The expected digest is checked before anything is mounted. If the image file has fs-verity,
// the kernel's measurement is used (constant time, and the file cannot change afterwards).
// Otherwise the image is first copied into the private staging directory and the copy is
// digested and mounted, so a writer of the original file cannot swap its content between the
// check and the mount. The copy is unlinked once mounted (the mount keeps it alive).

import {constants} from 'node:fs'
import {copyFile, stat} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {CfsError, DigestMismatchError, InvalidInputError, UnsupportedError} from '../errors.js'
import {measureVerity} from '../system/fsverity.js'
import {kernelHasFsVerity} from '../system/kernel.js'
import {checkOverlayPath, isMountPoint, mountImageOverlay, withStaging} from '../system/mount.js'
import {isDigest} from '../util/digest.js'
import {digestFile} from '../verity/pool.js'

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
  if (!isDigest(hex)) {
    throw new InvalidInputError(
      `--digest must be 64 hex digits (an fs-verity SHA-256 digest), got "${text.slice(0, 80)}"`,
    )
  }
  return Buffer.from(hex, 'hex')
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

export async function mountComposefs(opts: MountOptions): Promise<MountResult> {
  const image = resolve(opts.image)
  const mountpoint = resolve(opts.mountpoint)
  const objects = resolve(opts.objects)
  const expected = opts.digest === undefined ? null : parseDigest(opts.digest)
  await requireKind('image', image, 'file')
  await requireKind('mount point', mountpoint, 'dir')
  await requireKind('objects directory', objects, 'dir')
  checkOverlayPath('objects', objects)

  if (await isMountPoint(mountpoint)) {
    throw new CfsError('EMOUNTPOINT', `${mountpoint} is already a mount point`)
  }

  const notes: string[] = []
  const kernel = await kernelHasFsVerity()
  // The image's own fs-verity: the kernel's measurement, when the file has one.
  const measured = kernel === false ? null : await measureVerity(image)
  const verity = chooseVerity(opts.verity, kernel, measured !== null, notes)

  const checked = await withStaging(async (staging) => {
    let source = image
    let got: {digest: Buffer; digestSource: 'kernel' | 'userspace'} | null = null
    if (expected) {
      if (measured) {
        got = {digest: measured, digestSource: 'kernel'}
      } else {
        source = join(staging, 'image.cfs')
        await copyFile(image, source, constants.COPYFILE_EXCL)
        got = {digest: Buffer.from(await digestFile(source)), digestSource: 'userspace'}
      }
      if (!got.digest.equals(expected)) {
        throw new DigestMismatchError(
          `image digest mismatch: expected ${expected.toString('hex')}, ${image} has ${got.digest.toString('hex')}`,
        )
      }
    }
    await mountImageOverlay(staging, {source, objects, mountpoint, verity})
    return got
  })
  return {
    mountpoint,
    image,
    objects,
    digest: checked ? checked.digest.toString('hex') : null,
    digestSource: checked?.digestSource ?? null,
    verity,
    notes,
  }
}
