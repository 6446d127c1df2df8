// fs-verity on a freshly installed physical root: enabled by the installer where its kernel can,
// otherwise left to the first boot.
//
// fs-verity can only be enabled by a kernel that has it (CONFIG_FS_VERITY) on a filesystem made
// with the `verity` feature. A factory machine or CI host often lacks the former (this project's
// build host does), while the device's own kernel has it. Then the installer writes the marker
// composefs/seal-pending (an empty file: its existence is the message) and the initramfs seals
// the deployment on first boot — checks the image and every object against their digests, then
// enables fs-verity on them (docs/boot.md). Until then the data is protected only by the digests
// the initramfs checks in user space. docs/commands/install.md says so plainly.

import {join} from 'node:path'

import {SEAL_PENDING} from '../boot/contract.js'
import {CfsError} from '../errors.js'
import {Paths} from './paths.js'
import {ObjectRef} from '../image/load.js'
import {tryEnableVerity} from '../system/disk.js'
import {kernelHasFsVerity} from '../system/kernel.js'
import {writeFileAtomic} from '../util/fs.js'

export interface SealResult {
  /**
   * `enabled`: this kernel enabled fs-verity on the image and every object; `presealed`: install
   * to-disk wrote the fs-verity metadata itself and set the inode flags (src/install/preseal.ts);
   * `seal-pending`: left to the first boot.
   */
  state: 'enabled' | 'presealed' | 'seal-pending'
  /** Files fs-verity was enabled on (image + objects), 0 when sealing is left to the first boot. */
  files: number
  /** Why the installer could not enable it (null when it did). */
  reason: string | null
}

async function markPending(paths: Paths, reason: string): Promise<SealResult> {
  await writeFileAtomic(join(paths.sysroot, SEAL_PENDING), Buffer.alloc(0), 0o644)
  return {state: 'seal-pending', files: 0, reason}
}

/**
 * Enables fs-verity on the image and its objects, or leaves the seal-pending marker. The probe
 * is done once: the kernel configuration, then the image file itself (the first enable tells
 * whether this kernel and filesystem can). After the image succeeded, a failing object is an
 * error — a half-sealed deployment would fail its first `verity=require` mount.
 */
export async function sealOrMark(
  paths: Paths,
  image: string,
  objects: ObjectRef[],
  onProgress?: (done: number, total: number) => void,
): Promise<SealResult> {
  if ((await kernelHasFsVerity()) === false) {
    return markPending(paths, 'the installing kernel has no fs-verity (CONFIG_FS_VERITY is not set)')
  }
  const first = await tryEnableVerity(image)
  if (!first.enabled) return markPending(paths, `fs-verity cannot be enabled here: ${first.reason}`)
  let done = 0
  for (const r of objects) {
    const res = await tryEnableVerity(join(paths.objects, r.path))
    if (!res.enabled) {
      throw new CfsError(
        'EVERITY',
        `fs-verity enabled on the image but not on object ${r.path}: ${res.reason}`,
      )
    }
    onProgress?.(++done, objects.length)
  }
  return {state: 'enabled', files: objects.length + 1, reason: null}
}
