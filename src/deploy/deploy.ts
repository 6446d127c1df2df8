// `cfsboot deploy IMAGE`: stage a new deployment and make it the next boot's default.
//
// Order (each step complete and durable before the next, see docs/design.md):
//   1. check everything that can be checked before writing: the image parses, has a kernel, every
//      object it references is in the store or in --objects, and those to import have the right
//      fs-verity digest — bad input changes nothing;
//   2. import the missing objects (src/deploy/import.ts: verified, then hardlinked or copied);
//   3. the image, under its digest; the kernel and initramfs, in a directory named by content;
//   4. the deployment directory (metadata + /etc carried forward), built in staging/ and renamed;
//   5. last, the boot entry with the next generation: one rename makes it the default. The entry
//      is a BLS entry, or with a signing key a signed UKI (src/boot/uki.ts); a new deployment's
//      entry counts its boot tries ([boot] tries) until the booted system marks it good.
// All of it under the sysroot lock, so gc never sees a half-imported deployment.

import {createHash} from 'node:crypto'
import {access, mkdir, rename, rm, rmdir, stat} from 'node:fs/promises'
import {basename, join} from 'node:path'

import {CfsError, InvalidInputError} from '../errors.js'
import {loadImage, LoadedImage, ObjectRef, objectRefs} from '../image/load.js'
import {ObjectStore} from '../store/objects.js'
import {requireFsverityTool} from '../system/fsverity.js'
import {kernelHasFsVerity} from '../system/kernel.js'
import {acquireLock} from '../system/lock.js'
import {FsNode} from '../tree/node.js'
import {exists, fsyncDir, tempPathFor, writeFileAtomic} from '../util/fs.js'
import {bootedDigest} from './booted.js'
import {Config} from './config.js'
import {Deployment, listDeployments, readDeployment, writeDeployment} from './deployments.js'
import {KARG_DIGEST, KARG_VERITY, SORT_KEY} from '../boot/contract.js'
import {buildUki, ukiFileName, ukiOsRelease} from '../boot/uki.js'
import {
  BootEntry,
  demoteBls,
  entryFileName,
  entryId,
  makeDefault,
  nextGeneration,
  readEntries,
  writeEntry,
} from './entries.js'
import {carryEtc, EtcMerge} from './etc-merge.js'
import {findKernel, readImageFile, readOsRelease} from './image-files.js'
import {importObjects, planImports, Progress} from './import.js'
import {deploymentDir, imagePath, Paths, requireSysroot} from './paths.js'
import {SealResult, sealOrMark} from './seal.js'

export interface DeployOptions {
  paths: Paths
  config: Config
  /** The image file to deploy. */
  image: string
  /** Where the image's objects come from when the store lacks them. */
  objects?: string
  lockTimeout?: number
  onProgress?: Progress
  onWait?: () => void
  /** Sign a UKI with this key and certificate (default: cfsboot.conf [uki]; null: a BLS entry). */
  uki?: {key: string; cert: string} | null
  /** Count the new entry's boot tries (default true; install's factory deployment does not). */
  countTries?: boolean
  /**
   * Enable fs-verity (or leave the seal-pending marker) on what this deploy adds (default true).
   * An install passes false: it seals the whole store once itself (src/install/provision.ts).
   */
  seal?: boolean
  /** Objects already in the store that still need fs-verity enabled (a pull's downloads). */
  sealObjects?: ObjectRef[]
}

export interface DeployResult {
  digest: string
  /** True when the image was already deployed and was only made the default again. */
  existing: boolean
  generation: number
  entry: string
  /** bls: loader/entries/ENTRY; uki: a signed unified kernel image EFI/Linux/ENTRY. */
  entryKind: 'bls' | 'uki'
  /** Boot tries the new entry has (null: not counted). */
  tries: number | null
  kernel: {version: string; dir: string}
  objects: {referenced: number; imported: number; present: number; bytesImported: number}
  etc: EtcMerge & {mergedFrom: string | null}
  /**
   * fs-verity on what this deploy added: enabled here, or left to the initramfs (seal-pending);
   * null when the caller seals (DeployOptions.seal false).
   */
  verity: SealResult | null
}

/** Copies the kernel and initramfs to the boot dir, in a directory named by their content. */
async function installKernel(
  img: LoadedImage,
  paths: Paths,
  objectDirs: string[],
  added: string[],
): Promise<{version: string; dir: string; vmlinuz: Buffer; initramfs: Buffer}> {
  const k = findKernel(img.root)
  const vmlinuz = await readImageFile(k.vmlinuz, objectDirs)
  const initramfs = await readImageFile(k.initramfs, objectDirs)
  const hash = createHash('sha256').update(vmlinuz).update(initramfs).digest('hex').slice(0, 12)
  const name = `${k.version}-${hash}`
  const dir = join(paths.kernels, name)
  if (!(await exists(dir))) {
    await mkdir(paths.kernels, {recursive: true})
    const tmp = tempPathFor(dir)
    await mkdir(tmp)
    try {
      await writeFileAtomic(join(tmp, 'vmlinuz'), vmlinuz)
      await writeFileAtomic(join(tmp, 'initramfs.img'), initramfs)
      await rename(tmp, dir)
    } catch (err) {
      await rm(tmp, {recursive: true, force: true})
      throw err
    }
    added.push(dir)
    await fsyncDir(paths.kernels)
  }
  return {version: k.version, dir: `${basename(paths.kernels)}/${name}`, vmlinuz, initramfs}
}

/** The deployment whose /etc changes carry forward: the booted one, else the current default. */
async function mergeSource(paths: Paths, entries: BootEntry[]): Promise<string | null> {
  const {deployments} = await listDeployments(paths)
  const known = new Set(deployments.map((d) => d.digest))
  const booted = await bootedDigest()
  if (booted && known.has(booted)) return booted
  return entries.find((e) => known.has(e.digest))?.digest ?? null
}

async function loadTreeOf(paths: Paths, digest: string): Promise<FsNode | null> {
  try {
    return (await loadImage(imagePath(paths, digest))).root
  } catch {
    return null
  }
}

function entryTitle(d: Deployment): string {
  const version = d.osRelease.VERSION_ID ?? d.osRelease.VERSION ?? ''
  const name = d.osRelease.PRETTY_NAME ?? d.osRelease.NAME ?? 'cfsboot'
  return `${name}${version && !name.includes(version) ? ` ${version}` : ''} (${d.digest.slice(0, 12)})`
}

function entryFor(
  paths: Paths,
  d: Deployment,
  generation: number,
  config: Config,
  triesLeft: number | null,
): BootEntry {
  const id = entryId(d.digest)
  return {
    kind: 'bls',
    file: entryFileName(id, triesLeft, null),
    dir: paths.entries,
    id,
    digest: d.digest,
    generation,
    triesLeft,
    triesDone: null,
    title: entryTitle(d),
    linux: `/${d.kernel.dir}/vmlinuz`,
    initrd: `/${d.kernel.dir}/initramfs.img`,
    options: [`${KARG_VERITY}=${config.verity}`, ...config.kernelArgs],
    sortKey: SORT_KEY,
    version: String(generation),
  }
}

/**
 * Builds the deployment's signed UKI under a temporary name in EFI/Linux and renames it to its
 * entry name (the switch), then demotes BLS entries that would still sort above it.
 */
async function writeUki(
  paths: Paths,
  d: Deployment,
  kernel: {vmlinuz: Buffer; initramfs: Buffer},
  generation: number,
  config: Config,
  triesLeft: number | null,
  keys: {key: string; cert: string},
  entries: BootEntry[],
  added: string[],
): Promise<BootEntry> {
  const options = [`${KARG_VERITY}=${config.verity}`, ...config.kernelArgs]
  const title = entryTitle(d)
  const file = ukiFileName(generation, d.digest, triesLeft)
  await mkdir(paths.ukis, {recursive: true})
  const tmp = tempPathFor(join(paths.ukis, file))
  try {
    await buildUki({
      kernel: kernel.vmlinuz,
      initramfs: kernel.initramfs,
      cmdline: [`${KARG_DIGEST}=${d.digest}`, ...options].join(' '),
      osrel: ukiOsRelease(d.osRelease, title),
      out: tmp,
      key: keys.key,
      cert: keys.cert,
    })
    await rename(tmp, join(paths.ukis, file))
  } catch (err) {
    await rm(tmp, {force: true})
    throw err
  }
  added.push(join(paths.ukis, file))
  await fsyncDir(paths.ukis)
  added.length = 0 // the switch happened: what it refers to stays
  await mkdir(paths.entries, {recursive: true})
  await demoteBls(paths.entries, entries)
  const n = file.replace(/(\+\d+(-\d+)?)?\.efi$/, '')
  return {
    kind: 'uki',
    file,
    dir: paths.ukis,
    id: n,
    digest: d.digest,
    generation,
    triesLeft,
    triesDone: null,
    title,
    linux: '',
    initrd: '',
    options,
    sortKey: 'cfsboot',
    version: '0',
  }
}

export async function deploy(opts: DeployOptions): Promise<DeployResult> {
  const {paths} = opts
  await requireSysroot(paths)
  const img = await loadImage(opts.image)
  findKernel(img.root) // refuse an image without a kernel before taking the lock
  const keys = opts.uki === undefined ? opts.config.uki : opts.uki
  for (const [what, file] of keys
    ? [
        ['key', keys.key],
        ['certificate', keys.cert],
      ]
    : []) {
    await access(file!).catch(() => {
      throw new InvalidInputError(`UKI signing ${what} ${file} cannot be read`)
    })
  }
  if ((await kernelHasFsVerity()) !== false)
    await requireFsverityTool('deploy enables fs-verity on the new image and objects')
  const lock = await acquireLock(paths.lock, {
    ...(opts.lockTimeout !== undefined && {timeout: opts.lockTimeout}),
    ...(opts.onWait && {onWait: opts.onWait}),
  })
  // Files and directories this run created, in creation order: a deploy that fails takes them
  // back (under the lock nothing else can refer to them yet), so a failure changes nothing.
  const added: string[] = []
  try {
    await rm(paths.staging, {recursive: true, force: true}) // leftovers of an interrupted deploy
    return await stageAndSwitch(opts, img, added)
  } catch (err) {
    await undo(paths, added)
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') {
      throw new CfsError(
        'ENOSPC',
        `no space left on the device holding ${paths.sysroot} (or ${paths.bootDir}); the deploy was undone, nothing changed`,
      )
    }
    throw err
  } finally {
    lock.release()
  }
}

/** Removes what a failed deploy created, newest first, and its staging and temporary files. */
async function undo(paths: Paths, added: string[]): Promise<void> {
  try {
    for (const p of added.reverse()) await rm(p, {recursive: true, force: true})
    await rm(paths.staging, {recursive: true, force: true})
    await new ObjectStore(paths.objects).cleanTemporary()
  } catch {
    // Best effort: what is left is unreferenced, and the next gc removes it.
  }
}

/** Writes the entry that makes the deployment the default. */
async function switchTo(paths: Paths, entry: BootEntry, added: string[]): Promise<void> {
  try {
    await writeEntry(paths.entries, entry)
  } catch (err) {
    // Failing after the rename (fsync of the directory) leaves the entry in place: then what it
    // refers to must stay.
    if (await exists(join(paths.entries, entry.file))) added.length = 0
    throw err
  }
}

async function stageAndSwitch(opts: DeployOptions, img: LoadedImage, added: string[]): Promise<DeployResult> {
  const {paths, config} = opts
  const {entries} = await readEntries(paths.entries)
  const generation = nextGeneration(entries)
  const dir = deploymentDir(paths, img.digest)

  // Objects first, also for a deployment that exists already: it may have lost objects that
  // fsck --repair removed, and deploying it again with --objects fetches them back.
  const store = new ObjectStore(paths.objects)
  const refs = objectRefs(img.root)
  const missing = await planImports(refs, store, opts.objects, opts.onProgress)
  const bytesImported = missing.length
    ? await importObjects(missing, store, opts.objects!, added, opts.onProgress)
    : 0
  const objects = {
    referenced: refs.length,
    imported: missing.length,
    present: refs.length - missing.length,
    bytesImported,
  }

  await mkdir(paths.images, {recursive: true})
  const imgFile = imagePath(paths, img.digest)
  if (!(await exists(imgFile))) {
    await writeFileAtomic(imgFile, img.bytes, 0o444)
    added.push(imgFile)
  }

  // fs-verity on the new image and objects where this kernel can, else the first boot seals them.
  const verity =
    (opts.seal ?? true) ? await sealOrMark(paths, imgFile, [...missing, ...(opts.sealObjects ?? [])]) : null

  const kernel = await installKernel(img, paths, [paths.objects], added)

  const keys = opts.uki === undefined ? config.uki : opts.uki

  if (await exists(join(dir, 'deployment.json'))) {
    // Already deployed: make it the default again (without a boot counter: the administrator
    // chose a known deployment, even one whose tries ran out), nothing else changes.
    const d = await readDeployment(dir)
    const old = entries.find((e) => e.digest === img.digest)
    await mkdir(paths.entries, {recursive: true})
    let entry: BootEntry
    if (old) {
      entry = await makeDefault(paths.entries, entries, old, generation)
      added.length = 0
    } else if (keys) {
      entry = await writeUki(paths, d, kernel, generation, config, null, keys, entries, added)
    } else {
      entry = entryFor(paths, d, generation, config, null)
      await switchTo(paths, entry, added)
    }
    return {
      digest: img.digest,
      existing: true,
      generation,
      entry: entry.file,
      entryKind: entry.kind,
      tries: entry.triesLeft,
      kernel: d.kernel,
      objects,
      etc: {mergedFrom: d.etc.mergedFrom, carried: d.etc.carried, conflicts: d.etc.conflicts},
      verity,
    }
  }

  const from = await mergeSource(paths, entries)
  await mkdir(paths.staging, {recursive: true})
  const stage = join(paths.staging, img.digest)
  await mkdir(join(stage, 'etc', 'work'), {recursive: true})
  const etc = await carryEtc({
    fromUpper: from ? join(deploymentDir(paths, from), 'etc', 'upper') : null,
    oldRoot: from ? await loadTreeOf(paths, from) : null,
    newRoot: img.root,
    toUpper: join(stage, 'etc', 'upper'),
  })
  const d: Deployment = {
    apiVersion: 'cfsboot/v1',
    kind: 'Deployment',
    digest: img.digest,
    created: new Date().toISOString(),
    osRelease: await readOsRelease(img.root, [paths.objects]),
    kernel: {version: kernel.version, dir: kernel.dir},
    pinned: false,
    objects: {count: refs.length, bytes: refs.reduce((a, r) => a + r.size, 0)},
    etc: {mergedFrom: from, ...etc},
  }
  await writeDeployment(stage, d)
  await mkdir(paths.deployments, {recursive: true})
  await rename(stage, dir)
  added.push(dir)
  await fsyncDir(paths.deployments)
  await rmdir(paths.staging) // empty now; a staging/ that exists means an interrupted command

  // The switch: after this write the new deployment is the default; nothing below may fail.
  const tries = (opts.countTries ?? true) && config.tries > 0 ? config.tries : null
  let entry: BootEntry
  if (keys) {
    entry = await writeUki(paths, d, kernel, generation, config, tries, keys, entries, added)
  } else {
    entry = entryFor(paths, d, generation, config, tries)
    await mkdir(paths.entries, {recursive: true})
    await switchTo(paths, entry, added)
  }
  return {
    digest: img.digest,
    existing: false,
    generation,
    entry: entry.file,
    entryKind: entry.kind,
    tries,
    kernel: {version: kernel.version, dir: kernel.dir},
    objects,
    etc: {mergedFrom: from, ...etc},
    verity,
  }
}

/** Makes the sysroot skeleton (used by install and by tests): composefs/{objects,images,deployments}, var, entries. */
export async function initSysroot(paths: Paths): Promise<void> {
  for (const d of [paths.objects, paths.images, paths.deployments, paths.var, paths.entries, paths.kernels]) {
    await mkdir(d, {recursive: true})
  }
  if (!(await stat(paths.lock).catch(() => null))) await writeFileAtomic(paths.lock, Buffer.alloc(0), 0o600)
}
