// Absolute paths on one physical root, built from the boot contract's relative names
// (src/boot/contract.ts owns every name the initramfs or the health program also reads). What
// is only the deployment verbs' business stays here: the default mount point and config file,
// and the boot dir's layout (the boot loader's, not the initramfs's).

import {stat} from 'node:fs/promises'
import {join} from 'node:path'

import {
  COMPOSEFS_DIR,
  DEPLOYMENTS_DIR,
  IMAGES_DIR,
  LOCK_FILE,
  OBJECTS_DIR,
  STAGING_DIR,
  VAR_DIR,
} from '../boot/contract.js'
import {InvalidInputError} from '../errors.js'

export const DEFAULT_SYSROOT = '/sysroot'
export const DEFAULT_CONFIG = '/etc/cfsboot/cfsboot.conf'

export interface Paths {
  sysroot: string
  composefs: string
  objects: string
  images: string
  deployments: string
  staging: string
  lock: string
  var: string
  bootDir: string
  entries: string
  /** Signed unified kernel images (BLS Type 2 entries): BOOT/EFI/Linux. */
  ukis: string
  kernels: string
}

export function sysrootPaths(sysroot: string, bootDir?: string): Paths {
  const boot = bootDir ?? join(sysroot, 'boot')
  return {
    sysroot,
    composefs: join(sysroot, COMPOSEFS_DIR),
    objects: join(sysroot, OBJECTS_DIR),
    images: join(sysroot, IMAGES_DIR),
    deployments: join(sysroot, DEPLOYMENTS_DIR),
    staging: join(sysroot, STAGING_DIR),
    lock: join(sysroot, LOCK_FILE),
    var: join(sysroot, VAR_DIR),
    bootDir: boot,
    entries: join(boot, 'loader', 'entries'),
    ukis: join(boot, 'EFI', 'Linux'),
    kernels: join(boot, 'cfsboot'),
  }
}

export const imagePath = (p: Paths, digest: string): string => join(p.images, digest)
export const deploymentDir = (p: Paths, digest: string): string => join(p.deployments, digest)

export {isDigest} from '../util/digest.js'

/**
 * Refuses a directory that is not a cfsboot physical root (no composefs/), before anything is
 * read or written there (taking the lock would otherwise create files in it).
 */
export async function requireSysroot(p: Paths): Promise<void> {
  const st = await stat(p.composefs).catch(() => null)
  if (!st?.isDirectory()) {
    throw new InvalidInputError(`${p.sysroot} is not a cfsboot system (no composefs/ directory)`)
  }
}
