// `cfsboot deploy IMAGE`: stage a new deployment and make it the next boot's default.
//
// Order (each step complete and durable before the next, see docs/design.md):
//   1. check everything that can be checked before writing: the image parses, has a kernel, every
//      object it references is in the store or in --objects, and those to import have the right
//      fs-verity digest — bad input changes nothing;
//   2. import the missing objects (verified copies, or hardlinks on the same filesystem);
//   3. the image, under its digest; the kernel and initramfs, in a directory named by content;
//   4. the deployment directory (metadata + /etc carried forward), built in staging/ and renamed;
//   5. last, the boot entry with the next generation: one rename makes it the default. The entry
//      is a BLS entry, or with a signing key a signed UKI (src/boot/uki.ts); a new deployment's
//      entry counts its boot tries ([boot] tries) until the booted system marks it good.
// All of it under the sysroot lock, so gc never sees a half-imported deployment.

import {createHash, randomBytes} from 'node:crypto'
import {access, link, mkdir, rename, rm, rmdir, stat} from 'node:fs/promises'
import {basename, dirname, join} from 'node:path'

import {CfsError, DamageError, DigestMismatchError, ExitCode, InvalidInputError} from '../errors.js'
import {ObjectStore, TEMP_PREFIX} from '../store/objects.js'
import {acquireLock} from '../system/lock.js'
import {FsNode} from '../tree/node.js'
import {forEachLimit} from '../util/concurrency.js'
import {exists, fsyncDir, tempPathFor, writeFileAtomic} from '../util/fs.js'
import {DigestPool} from '../verity/pool.js'
import {bootedDigest} from './booted.js'
import {Config} from './config.js'
import {Deployment, listDeployments, readDeployment, writeDeployment} from './deployments.js'
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
import {loadImage, LoadedImage, ObjectRef, referencedObjects} from './images.js'
import {deploymentDir, imagePath, Paths, requireSysroot, SORT_KEY} from './paths.js'
import {SealResult, sealOrMark} from './seal.js'

export interface DeployOptions {
  paths: Paths
  config: Config
  /** The image file to deploy. */
  image: string
  /** Where the image's objects come from when the store lacks them. */
  objects?: string
  lockTimeout?: number
  onProgress?: (phase: string, done: number, total: number) => void
  onWait?: () => void
  /** Sign a UKI with this key and certificate (default: cfsboot.conf [uki]; null: a BLS entry). */
  uki?: {key: string; cert: string} | null
  /** Count the new entry's boot tries (default true; install's factory deployment does not). */
  countTries?: boolean
  /** Objects already in the store that still need fs-verity enabled (a pull's downloads). */
  seal?: ObjectRef[]
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
  /** fs-verity on what this deploy added: enabled here, or left to the initramfs (seal-pending). */
  verity: SealResult
}

const OBJECT_PATH = /^[0-9a-f]{2}\/[0-9a-f]{62}$/

/** Hex digest named by an object path; refuses payloads that are not content addresses. */
function digestOfPath(path: string): Buffer {
  if (!OBJECT_PATH.test(path))
    throw new InvalidInputError(
      `image references ${JSON.stringify(path)}, which is not an object path (xx/yyyy…)`,
    )
  return Buffer.from(path.replace('/', ''), 'hex')
}

/** Above this many references, list the store once instead of probing each object. */
const LIST_STORE_THRESHOLD = 512

/** Objects the store lacks; each must be in the source dir with the right digest. */
async function planImports(
  refs: ObjectRef[],
  store: ObjectStore,
  source: string | undefined,
  opts: DeployOptions,
): Promise<ObjectRef[]> {
  const missing: ObjectRef[] = []
  if (refs.length > LIST_STORE_THRESHOLD) {
    // One readdir per fan-out directory beats one lstat per object for large images.
    const present = new Set<string>()
    for await (const d of store.list()) present.add(d.toString('hex'))
    for (const r of refs) if (!present.has(digestOfPath(r.path).toString('hex'))) missing.push(r)
  } else {
    for (const r of refs) if (!(await store.has(digestOfPath(r.path)))) missing.push(r)
  }
  if (missing.length === 0) return missing
  const absent: string[] = []
  if (source) for (const r of missing) if (!(await exists(join(source, r.path)))) absent.push(r.path)
  if (!source || absent.length) {
    const list = source ? absent : missing.map((r) => r.path)
    throw new DamageError(
      `${list.length} object(s) the image needs are not in the store${source ? ` nor in ${source}` : ' (pass --objects DIR)'}; first: ${list[0]}`,
    )
  }
  // Verify before importing anything: a wrong object must not change the system at all.
  const pool = new DigestPool()
  try {
    const digests = await pool.digestFiles(
      missing.map((r) => join(source, r.path)),
      (done) => opts.onProgress?.('verify', done, missing.length),
    )
    missing.forEach((r, i) => {
      if (!digests[i]!.equals(digestOfPath(r.path))) {
        throw new DigestMismatchError(
          `object ${r.path} in ${source} has the wrong fs-verity digest (${digests[i]!.toString('hex')})`,
        )
      }
    })
  } finally {
    await pool.close()
  }
  return missing
}

/** Object imports in flight (forEachLimit waits for all of them before a failed deploy is undone). */
const IMPORT_CONCURRENCY = 4

/**
 * Imports objects: a hardlink when the source is on the same filesystem, else a copy. Every object
 * added is recorded in `added` (as soon as it has its name) so a failed deploy can take it back.
 */
async function importObjects(
  missing: ObjectRef[],
  store: ObjectStore,
  source: string,
  added: string[],
  opts: DeployOptions,
): Promise<number> {
  let bytes = 0
  let done = 0
  const linkedDirs = new Set<string>()
  // Fan-out dirs this import creates are taken back with it on failure (recorded before their
  // objects, so the undo, newest first, empties them first).
  for (const fanout of new Set(missing.map((r) => dirname(store.path(digestOfPath(r.path)))))) {
    if (!(await exists(fanout))) added.push(fanout)
  }
  await forEachLimit(missing, IMPORT_CONCURRENCY, async (r) => {
    const digest = digestOfPath(r.path)
    const src = join(source, r.path)
    const dst = store.path(digest)
    let linked = false
    if (!(await exists(dst))) {
      const fanout = dirname(dst)
      if (await mkdir(fanout, {recursive: true})) linkedDirs.add(store.dir)
      // The store's temporary name, so an interrupted import is cleaned by gc like any other.
      const tmp = join(fanout, `${TEMP_PREFIX}${basename(dst)}-${randomBytes(6).toString('hex')}`)
      try {
        await link(src, tmp)
        await rename(tmp, dst)
        linkedDirs.add(fanout)
        linked = true
      } catch {
        await rm(tmp, {force: true})
      }
    }
    if (!linked) await store.importFile(src, digest)
    added.push(dst)
    bytes += r.size
    opts.onProgress?.('import', ++done, missing.length)
  })
  // The names of linked objects must be durable before anything refers to them.
  for (const dir of linkedDirs) await fsyncDir(dir)
  await store.flush()
  return bytes
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
    options: [`cfsboot.verity=${config.verity}`, ...config.kernelArgs],
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
  const options = [`cfsboot.verity=${config.verity}`, ...config.kernelArgs]
  const title = entryTitle(d)
  const file = ukiFileName(generation, d.digest, triesLeft)
  await mkdir(paths.ukis, {recursive: true})
  const tmp = tempPathFor(join(paths.ukis, file))
  try {
    await buildUki({
      kernel: kernel.vmlinuz,
      initramfs: kernel.initramfs,
      cmdline: [`cfsboot.digest=${d.digest}`, ...options].join(' '),
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
        ExitCode.Failure,
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
  const refs = referencedObjects(img.root)
  const missing = await planImports(refs, store, opts.objects, opts)
  const bytesImported = missing.length ? await importObjects(missing, store, opts.objects!, added, opts) : 0
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
  const verity = await sealOrMark(paths, imgFile, [...missing, ...(opts.seal ?? [])])

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
