// Where everything lives on the physical root (docs/design.md draws the tree). One place for
// every path and name, so the deploy verbs, GC, fsck and the initramfs agree.

import {stat} from 'node:fs/promises'
import {join} from 'node:path'

import {InvalidInputError} from '../errors.js'

export const DEFAULT_SYSROOT = '/sysroot'
export const DEFAULT_CONFIG = '/etc/cfsboot/cfsboot.conf'
/** The kernel command line parameter that names the image to boot. */
export const DIGEST_KARG = 'cfsboot.digest'
/** Where the initramfs records what it booted. */
export const DEFAULT_RUN_DIR = '/run/cfsboot'
export const ENTRY_PREFIX = 'cfsboot-'
export const SORT_KEY = 'cfsboot'

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
  const composefs = join(sysroot, 'composefs')
  const boot = bootDir ?? join(sysroot, 'boot')
  return {
    sysroot,
    composefs,
    objects: join(composefs, 'objects'),
    images: join(composefs, 'images'),
    deployments: join(composefs, 'deployments'),
    staging: join(composefs, 'staging'),
    lock: join(composefs, 'cfsboot.lock'),
    var: join(sysroot, 'var'),
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
