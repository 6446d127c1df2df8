// `cfsboot install to-filesystem DIR`: install into a target someone else prepared and mounted
// (a partitioning tool of their own, an image builder, a test). DIR is the physical root; the
// boot directory is --boot-dir (the mounted ESP) or DIR/boot. Nothing is partitioned or
// formatted; DIR must be empty apart from lost+found, boot and efi.

import {mkdir} from 'node:fs/promises'
import {join, resolve} from 'node:path'

import {checkTargetDirectory} from './preflight.js'
import {checkImage, installConfig, provision, provisionSummary} from './provision.js'
import {InstallResult} from './result.js'

export interface ToFilesystemOptions {
  dir: string
  bootDir?: string
  image: string
  objects: string
  configFile?: string
  /** Signed UKIs (and a signed systemd-boot) with this key and certificate. */
  uki?: {key: string; cert: string}
  /** Write systemd-boot and loader.conf into the boot dir (default true). */
  bootLoader?: boolean
  log?: (line: string) => void
}

export async function installToFilesystem(opts: ToFilesystemOptions): Promise<InstallResult> {
  const log = opts.log ?? (() => undefined)
  const facts = await checkImage(opts.image, opts.objects)
  const dir = await checkTargetDirectory(opts.dir)
  const bootDir = opts.bootDir !== undefined ? resolve(opts.bootDir) : join(dir, 'boot')
  const cfg = await installConfig(facts, opts.configFile)
  const {config} = cfg
  await mkdir(bootDir, {recursive: true})
  log(`deploying ${facts.image.digest.slice(0, 12)} into ${dir} (boot files in ${bootDir})`)
  const p = await provision({
    sysroot: dir,
    bootDir,
    facts,
    config,
    bootLoader: opts.bootLoader ?? true,
    // A mounted target: debugfs cannot change it, so this kernel seals or the first boot does.
    seal: 'kernel',
    ...(opts.uki && {uki: opts.uki}),
  })
  log(
    p.verity.state === 'enabled'
      ? `fs-verity enabled on ${p.verity.files} file(s)`
      : `fs-verity not enabled (${p.verity.reason}); the first boot seals the deployment`,
  )
  return {
    apiVersion: 'cfsboot/v1',
    kind: 'Install',
    method: 'to-filesystem',
    target: {kind: 'directory', path: dir, size: null, device: null},
    erased: null,
    partitions: null,
    sysroot: dir,
    bootDir,
    ...provisionSummary(p, facts, cfg),
  }
}
