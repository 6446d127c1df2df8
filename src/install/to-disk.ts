// `cfsboot install to-disk`: factory provisioning of a whole disk, or of a disk image file
// through a loop device (--via-loopback).
//
//   checks (preflight.ts) ─► show what will be erased ─► confirm
//   ─► GPT: cfsboot-esp + cfsboot-root (sfdisk) ─► mkfs.ext4 -O verity on the root
//   ─► mount the root; deploy the image into it with a temporary directory as the boot dir
//   ─► fs-verity metadata written past each file's data (preseal.ts) ─► unmount
//   ─► one debugfs run sets each file's size and EXT4_VERITY_FL: the store is sealed
//   ─► mkfs.vfat on the ESP and copy the boot dir into it with mtools (no vfat mount needed)
//
// Nothing is written before every check has passed and the caller confirmed. Whatever happens
// afterwards, the root is unmounted, the temporary directories removed and the loop device
// detached; a disk image file this command created is removed again when it fails.

import {mkdir, mkdtemp, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {
  ESP_FS_LABEL,
  ESP_PARTLABEL,
  ESP_TYPE_GUID,
  LINUX_FS_TYPE_GUID,
  ROOT_FS_LABEL,
  ROOT_PARTLABEL,
} from '../boot/contract.js'
import {CfsError} from '../errors.js'
import {
  attachLoop,
  BlockDevice,
  createSparseFile,
  describeBlockDevice,
  detachLoop,
  makeExt4,
  mountDevice,
  readPartitionTable,
  refreshPartitions,
  syncDevice,
  unmount,
  writePartitionTable,
} from '../system/disk.js'
import {FatTarget, makeFat, writeDirToFat} from '../system/fat.js'
import {setVerityFlags} from './preseal.js'
import {findSystemdBoot} from './esp.js'
import {
  checkEspFits,
  checkLoopbackFile,
  checkNotInUse,
  checkNotMounted,
  DiskFacts,
  preflightDisk,
} from './preflight.js'
import {checkImage, ImageFacts, installConfig, provision, provisionSummary} from './provision.js'
import {diskBytesNeeded, formatBytes, Layout, planLayout, rootBytesNeeded, sfdiskScript} from './partition.js'
import {ErasedPartition, InstallResult} from './result.js'

export interface ToDiskOptions {
  /** A whole disk, e.g. /dev/sdb. Exactly one of device and loopback. */
  device?: string
  /** Create (or overwrite) a disk image file of `size` bytes and install into it. */
  loopback?: {file: string; size: number}
  image: string
  objects: string
  wipe: boolean
  force: boolean
  espSize: number
  configFile?: string
  /** Signed UKIs (and a signed systemd-boot) with this key and certificate. */
  uki?: {key: string; cert: string}
  /**
   * Shown what will be erased (or created); returns whether to go on. `destructive` is false
   * only for a new or empty disk image file.
   */
  confirm: (plan: ErasePlan) => Promise<boolean>
  /** Progress lines for the user (stderr). */
  log?: (line: string) => void
}

export interface ErasePlan {
  target: string
  destructive: boolean
  /** Human lines: the device, its size and model, one line per current partition. */
  lines: string[]
  size: number
  model: string | null
  partitions: ErasedPartition[]
}

/** What will be lost, from the checks' findings. */
function erasePlanForDisk(f: DiskFacts): ErasePlan {
  const {dev} = f
  const byStart = new Map((f.table?.partitions ?? []).map((p) => [p.node, p]))
  const partitions: ErasedPartition[] = dev.partitions.map((p) => {
    const t = byStart.get(p.node)
    const sig = f.partitionSignatures.get(p.node) ?? null
    return {
      node: p.node,
      number: p.number,
      size: p.size,
      type: t?.type ?? null,
      name: t?.name || null,
      filesystem: sig?.['TYPE'] ?? null,
      label: sig?.['LABEL'] ?? null,
    }
  })
  const lines = [`${dev.path}: ${formatBytes(dev.size)}${dev.model ? `, ${dev.model}` : ''}`]
  if (f.table) lines.push(`  partition table: ${f.table.label}, ${f.table.partitions.length} partition(s)`)
  else if (f.signature) lines.push(`  no partition table; holds ${f.signature['TYPE'] ?? 'a signature'}`)
  else lines.push('  no partition table, no filesystem signature')
  for (const p of partitions) lines.push(`  ${partitionLine(p)}`)
  return {target: dev.path, destructive: true, lines, size: dev.size, model: dev.model, partitions}
}

export function partitionLine(p: ErasedPartition): string {
  const bits = [p.node, formatBytes(p.size)]
  if (p.name) bits.push(`name=${p.name}`)
  if (p.filesystem) bits.push(p.filesystem + (p.label ? ` label=${p.label}` : ''))
  else bits.push('no filesystem')
  return bits.join('  ')
}

async function layoutIsOnDisk(dev: BlockDevice, layout: Layout): Promise<void> {
  const t = await readPartitionTable(dev.path)
  const s = layout.sectorSize
  const [esp, root] = t?.partitions ?? []
  const ok =
    t?.label === 'gpt' &&
    t.partitions.length === 2 &&
    esp!.start * s === layout.esp.offset &&
    esp!.size * s === layout.esp.size &&
    esp!.type.toUpperCase() === ESP_TYPE_GUID &&
    root!.start * s === layout.root.offset &&
    root!.type.toUpperCase() === LINUX_FS_TYPE_GUID
  if (!ok)
    throw new CfsError(
      'EPARTITIONS',
      `the partition table sfdisk wrote on ${dev.path} is not the one asked for`,
    )
}

/** Partitions, filesystems, deployment and ESP on a device that passed the checks. */
async function writeDisk(
  dev: BlockDevice,
  facts: ImageFacts,
  opts: ToDiskOptions,
  log: (line: string) => void,
): Promise<Omit<InstallResult, 'target' | 'erased'>> {
  const layout = planLayout(dev.size, opts.espSize, dev.sectorSize)
  log(
    `partitioning ${dev.path}: ${ESP_PARTLABEL} ${formatBytes(layout.esp.size)}, ${ROOT_PARTLABEL} ${formatBytes(layout.root.size)}`,
  )
  await writePartitionTable(dev.path, sfdiskScript(layout))
  await layoutIsOnDisk(dev, layout)
  const [espPart, rootPart] = await refreshPartitions(dev, 2)

  log(`making ext4 on ${rootPart!.node}`)
  await makeExt4(rootPart!.node, ROOT_FS_LABEL)
  const cfg = await installConfig(facts, opts.configFile)
  const {config} = cfg

  const work = await mkdtemp(join(tmpdir(), 'cfsboot-install-'))
  const rootMount = join(work, 'root')
  const bootDir = join(work, 'esp')
  let mounted = false
  try {
    await mkdir(rootMount)
    await mkdir(bootDir)
    await mountDevice(rootPart!.node, rootMount)
    mounted = true
    log(
      `deploying ${facts.image.digest.slice(0, 12)}: ${facts.objects.length} object(s), ${formatBytes(facts.objectBytes)}`,
    )
    const p = await provision({
      sysroot: rootMount,
      bootDir,
      facts,
      config,
      bootLoader: true,
      // This command made the filesystem: under `verity = require` it seals the store itself,
      // whatever this kernel has (the device's kernel must have fs-verity anyway). Under maybe
      // or off it leaves sealing to a kernel that can: a pre-sealed file cannot be opened by a
      // kernel without fs-verity, which such a policy allows the device to run.
      seal: config.verity === 'require' ? 'preseal' : 'kernel',
      ...(opts.uki && {uki: opts.uki}),
    })
    await unmount(rootMount)
    mounted = false
    let verity = p.verity
    if (p.preseal) {
      const t0 = Date.now()
      verity = await setVerityFlags(rootPart!.node, p.preseal)
      log(
        `fs-verity on ${verity.files} file(s): metadata written in ${p.preseal.ms} ms, inode flags set in ${Date.now() - t0} ms`,
      )
    }

    log(`making FAT32 on ${espPart!.node} and copying the boot files`)
    const fat: FatTarget = {path: dev.path, offset: layout.esp.offset}
    await makeFat(fat, layout.esp.size, ESP_FS_LABEL, dev.sectorSize)
    await writeDirToFat(fat, bootDir)
    await syncDevice(dev.path)
    return {
      apiVersion: 'cfsboot/v1',
      kind: 'Install',
      method: 'to-disk',
      partitions: [
        {
          number: 1,
          node: espPart!.node,
          name: ESP_PARTLABEL,
          type: ESP_TYPE_GUID,
          ...layout.esp,
          filesystem: 'vfat',
          label: ESP_FS_LABEL,
        },
        {
          number: 2,
          node: rootPart!.node,
          name: ROOT_PARTLABEL,
          type: LINUX_FS_TYPE_GUID,
          ...layout.root,
          filesystem: 'ext4',
          label: ROOT_FS_LABEL,
        },
      ],
      sysroot: null,
      bootDir: null,
      ...provisionSummary({...p, verity}, facts, cfg),
    }
  } finally {
    if (mounted) await unmount(rootMount).catch(() => undefined)
    await rm(work, {recursive: true, force: true}).catch(() => undefined)
  }
}

/** Signals that stop an install at the next step, after cleaning up (instead of killing it mid-way). */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP']

/**
 * Installs; a SIGINT, SIGTERM or SIGHUP stops it at the next step boundary (each progress line)
 * with the usual cleanup — unmount, detach, remove a new image file — instead of leaving mounts
 * and loop devices behind. A tool running at that moment finishes (or dies of the same Ctrl-C).
 */
export async function installToDisk(opts: ToDiskOptions): Promise<InstallResult> {
  let stopped: NodeJS.Signals | null = null
  const onSignal = (sig: NodeJS.Signals): void => {
    stopped = sig
  }
  for (const s of STOP_SIGNALS) process.on(s, onSignal)
  const log = opts.log ?? (() => undefined)
  const step = (line: string): void => {
    if (stopped) {
      throw new CfsError('EINTERRUPTED', `interrupted by ${stopped}; cleaned up, the target is incomplete`)
    }
    log(line)
  }
  try {
    return await install(opts, step)
  } finally {
    for (const s of STOP_SIGNALS) process.off(s, onSignal)
  }
}

async function install(opts: ToDiskOptions, log: (line: string) => void): Promise<InstallResult> {
  if (!!opts.device === !!opts.loopback)
    throw new CfsError('EUSAGE', 'give either DEVICE or --via-loopback FILE')

  // Checks that need no target: the image, its objects, the ESP size, the boot loader.
  const facts = await checkImage(opts.image, opts.objects)
  const bootLoader = await findSystemdBoot()
  checkEspFits(opts.espSize, facts.kernelBytes, (await stat(bootLoader.source)).size)
  const rootNeeded = rootBytesNeeded(facts.imageBytes, facts.objectBytes)
  const needed = diskBytesNeeded(opts.espSize, rootNeeded)
  const neededDetail = `the ESP (${formatBytes(opts.espSize)}), the image and its objects (${formatBytes(facts.imageBytes + facts.objectBytes)}) with ext4's overhead`

  if (opts.device) {
    const disk = await preflightDisk(opts.device, {wipe: opts.wipe, force: opts.force, needed, neededDetail})
    const plan = erasePlanForDisk(disk)
    if (!(await opts.confirm(plan))) throw notConfirmed(disk.dev.path)
    // The question may have waited a long time: nothing may have mounted the disk meanwhile.
    await checkNotMounted(disk.dev)
    await checkNotInUse(disk.dev)
    const written = await writeDisk(disk.dev, facts, opts, log)
    return {
      ...written,
      target: {kind: 'block-device', path: disk.dev.path, size: disk.dev.size, device: disk.dev.path},
      erased: {size: plan.size, model: plan.model, partitions: plan.partitions},
    }
  }

  const {file, size} = opts.loopback!
  const f = await checkLoopbackFile(file, size, needed, neededDetail)
  const plan: ErasePlan = {
    target: f.path,
    destructive: f.exists && f.size > 0,
    lines: f.exists
      ? [
          `${f.path}: existing file of ${formatBytes(f.size)}${f.table ? `, ${f.table.partitions.length} partition(s)` : ''}, replaced by a ${formatBytes(size)} disk image`,
        ]
      : [`${f.path}: new ${formatBytes(size)} disk image`],
    size: f.size,
    model: null,
    partitions: [],
  }
  if (!(await opts.confirm(plan))) throw notConfirmed(f.path)

  await createSparseFile(f.path, size)
  let loop: string | null = null
  let ok = false
  try {
    loop = await attachLoop(f.path)
    log(`attached ${f.path} to ${loop}`)
    const dev = await describeBlockDevice(loop)
    const written = await writeDisk(dev, facts, opts, log)
    ok = true
    return {
      ...written,
      target: {kind: 'loopback', path: f.path, size, device: loop},
      erased: f.exists ? {size: f.size, model: null, partitions: []} : null,
    }
  } finally {
    if (loop) await detachLoop(loop).catch(() => undefined)
    if (!ok && !f.exists) await rm(f.path, {force: true}).catch(() => undefined)
  }
}

function notConfirmed(target: string): CfsError {
  return new CfsError('ENOTCONFIRMED', `not confirmed: nothing was written to ${target}`)
}
