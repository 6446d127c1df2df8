// What every install does once it has a physical root and a boot directory to write to:
// the sysroot skeleton, the first deployment (deploy() does the copying and writes the boot
// entry), fs-verity or the seal-pending marker, and the boot loader. Shared by to-disk and
// to-filesystem. Also the image checks both run before anything is written.

import {access, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {Config, DEFAULT_CONFIG_VALUES, loadConfig, parseConfig} from '../deploy/config.js'
import {deploy, DeployResult, initSysroot} from '../deploy/deploy.js'
import {findKernel, readImageFile} from '../deploy/image-files.js'
import {absentObjects, loadImage, LoadedImage, ObjectRef, objectRefs} from '../image/load.js'
import {imagePath, sysrootPaths} from '../deploy/paths.js'
import {DamageError, InvalidInputError} from '../errors.js'
import {lookupPath} from '../tree/lookup.js'
import {BootLoaderResult, installBootLoader} from './esp.js'
import {SealResult, sealOrMark} from '../deploy/seal.js'
import {PresealPlan, writeVerityMetadata} from './preseal.js'
import {InstallResult} from './result.js'

/** Where an image keeps the configuration its own deploys will use. */
export const IMAGE_CONFIG_PATH = '/etc/cfsboot/cfsboot.conf'
const MAX_CONFIG_BYTES = 64 * 1024

export interface ImageFacts {
  image: LoadedImage
  imagePath: string
  objectsDir: string
  imageBytes: number
  objects: ObjectRef[]
  objectBytes: number
  /** vmlinuz + initramfs.img: what the ESP must hold. */
  kernelBytes: number
}

/**
 * The image parses, has a kernel, and every object it references is in `objectsDir` with the
 * size the image says. (Contents are verified by digest while deploy() copies them; checking
 * them here too would read everything twice. A wrong object then fails the install after the
 * disk was partitioned, with a one-line error naming it.)
 */
export async function checkImage(imageFile: string, objectsDir: string): Promise<ImageFacts> {
  const st = await stat(objectsDir).catch(() => null)
  if (!st?.isDirectory()) throw new InvalidInputError(`--objects ${objectsDir} is not a directory`)
  const image = await loadImage(imageFile)
  const kernel = findKernel(image.root)
  const objects = objectRefs(image.root)
  const missing = (await absentObjects(objects, objectsDir, {checkSize: true})).map((r) => r.path)
  if (missing.length) {
    throw new DamageError(
      `${missing.length} object(s) the image needs are missing from ${objectsDir} or have the wrong size; first: ${missing[0]}`,
    )
  }
  return {
    image,
    imagePath: imageFile,
    objectsDir,
    imageBytes: image.bytes.length,
    objects,
    objectBytes: objects.reduce((a, r) => a + r.size, 0),
    kernelBytes: kernel.vmlinuz.size + kernel.initramfs.size,
  }
}

export interface InstallConfig {
  config: Config
  /** Where it came from: --config, the image's own /etc/cfsboot/cfsboot.conf, or built-in defaults. */
  source: 'file' | 'image' | 'defaults'
  path: string | null
}

/**
 * The configuration for the first boot entry. By default the image's own cfsboot.conf, so the
 * entry the installer writes matches what the installed system's own deploys will write.
 */
export async function installConfig(facts: ImageFacts, file?: string): Promise<InstallConfig> {
  if (file !== undefined) {
    await access(file).catch(() => {
      throw new InvalidInputError(`--config ${file} does not exist`)
    })
    return {config: await loadConfig(file), source: 'file', path: file}
  }
  const node = lookupPath(facts.image.root, IMAGE_CONFIG_PATH)
  if (node?.isReg() && node.size <= MAX_CONFIG_BYTES) {
    const text = (await readImageFile(node, [facts.objectsDir])).toString('utf8')
    return {config: parseConfig(text), source: 'image', path: IMAGE_CONFIG_PATH}
  }
  return {config: {...DEFAULT_CONFIG_VALUES}, source: 'defaults', path: null}
}

export interface ProvisionResult {
  deploy: DeployResult
  /** For `preseal`: what the metadata step did; the caller finishes with setVerityFlags(). */
  verity: SealResult
  bootLoader: BootLoaderResult | null
  /** The files waiting for their inode flags (preseal only), else null. */
  preseal: PresealPlan | null
}

/** Fills an empty physical root and boot directory with the first deployment. */
export async function provision(opts: {
  sysroot: string
  bootDir: string
  facts: ImageFacts
  config: Config
  bootLoader: boolean
  /**
   * How the store gets fs-verity, done once for the whole install (deploy itself does not seal):
   * `kernel` enables it with this kernel or leaves the seal-pending marker (src/deploy/seal.ts);
   * `preseal` writes the metadata for src/install/preseal.ts, for a root the caller made and
   * will unmount.
   */
  seal: 'kernel' | 'preseal'
  /** Sign UKIs and systemd-boot with this (default: the configuration's [uki]). */
  uki?: {key: string; cert: string}
  onProgress?: (phase: string, done: number, total: number) => void
}): Promise<ProvisionResult> {
  const uki = opts.uki ?? opts.config.uki
  const paths = sysrootPaths(opts.sysroot, opts.bootDir)
  await initSysroot(paths)
  const result = await deploy({
    paths,
    config: opts.config,
    image: opts.facts.imagePath,
    objects: opts.facts.objectsDir,
    lockTimeout: 0,
    uki,
    // The factory deployment is not counted: there is nothing to fall back to.
    countTries: false,
    seal: false,
    ...(opts.onProgress && {onProgress: opts.onProgress}),
  })
  // Last: pre-sealed files read back their metadata too until their flags are set.
  const bootLoader = opts.bootLoader ? await installBootLoader(opts.bootDir, uki ?? undefined) : null
  const image = imagePath(paths, result.digest)
  const progress = (done: number, total: number): void => opts.onProgress?.('fs-verity', done, total)
  if (opts.seal === 'preseal') {
    const files = [{path: image, digest: result.digest}]
    for (const r of new Set(opts.facts.objects.map((o) => o.path))) {
      files.push({path: join(paths.objects, r), digest: r.replace('/', '')})
    }
    const preseal = writeVerityMetadata(opts.sysroot, files, progress)
    return {
      deploy: result,
      verity: {state: 'presealed', files: files.length, reason: null},
      bootLoader,
      preseal,
    }
  }
  const verity = await sealOrMark(paths, image, opts.facts.objects, progress)
  return {deploy: result, verity, bootLoader, preseal: null}
}

/** The part of an install's result that both methods report the same way. */
export function provisionSummary(
  p: ProvisionResult,
  facts: ImageFacts,
  cfg: InstallConfig,
): Pick<InstallResult, 'digest' | 'deployment' | 'config' | 'verity' | 'bootLoader'> {
  return {
    digest: p.deploy.digest,
    deployment: {
      generation: p.deploy.generation,
      entry: p.deploy.entry,
      entryKind: p.deploy.entryKind,
      kernel: p.deploy.kernel,
      objects: {count: facts.objects.length, bytes: facts.objectBytes},
    },
    config: {source: cfg.source, path: cfg.path, verity: cfg.config.verity},
    verity: p.verity,
    bootLoader: p.bootLoader,
  }
}
