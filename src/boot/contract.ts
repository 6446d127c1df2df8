// The boot contract: the names the installer, the initramfs (dracut/90cfsboot), the deployment
// verbs and the health program (templates/health) must agree on, defined once here
// (docs/boot.md explains them). The shell hooks cannot import this file; test/contract.test.ts
// reads them and fails when they use a name or path other than the ones below.
//
// The whole composefs/ tree is here, staging and the lock included: they sit beside what the
// initramfs reads, and a name added there must not collide with one it reads. What only the
// deployment verbs use (the default sysroot, the config file, the boot dir's layout, absolute
// paths on one sysroot) is in src/deploy/paths.ts, built from these names.

import {isDigest} from '../util/digest.js'

// --- GPT: what an install writes, what the device and the initramfs look for ------------------

/** GPT type of the EFI system partition. */
export const ESP_TYPE_GUID = 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B'
/** "Linux filesystem data": the type of the physical root's partition. */
export const LINUX_FS_TYPE_GUID = '0FC63DAF-8483-4772-8E79-3D69D8477DE4'
/** GPT partition names an install writes; the device finds its ESP and root by them. */
export const ESP_PARTLABEL = 'cfsboot-esp'
export const ROOT_PARTLABEL = 'cfsboot-root'
/** Filesystem labels (FAT labels are 11 upper-case characters at most). */
export const ROOT_FS_LABEL = 'cfsboot-root'
export const ESP_FS_LABEL = 'CFSBOOT-ESP'

// --- Kernel command line -----------------------------------------------------------------------

/** The image to boot, by its fs-verity digest (64 lower-case hex digits). */
export const KARG_DIGEST = 'cfsboot.digest'
/** The same, under composefs-rs/bootc's name; cfsboot.digest= wins when both are given. */
export const KARG_COMPOSEFS = 'composefs'
/** How the initramfs checks the image and the files. */
export const KARG_VERITY = 'cfsboot.verity'
/** The physical root's device, in dracut's LABEL=/UUID=/PARTLABEL=/PARTUUID= notation. */
export const KARG_ROOT = 'cfsboot.root'
export const VERITY_POLICIES = ['require', 'maybe', 'off'] as const
export type VerityPolicy = (typeof VERITY_POLICIES)[number]
/** cfsboot.verity= when the command line has none. */
export const DEFAULT_VERITY: VerityPolicy = 'require'
/** cfsboot.root= when the command line has none. */
export const DEFAULT_ROOT = `PARTLABEL=${ROOT_PARTLABEL}`

// --- The physical root (relative to it; docs/design.md draws the tree) --------------------------

export const COMPOSEFS_DIR = 'composefs'
/** Content-addressed file contents: objects/XX/REST, named by fs-verity digest. */
export const OBJECTS_DIR = `${COMPOSEFS_DIR}/objects`
/** EROFS metadata images, named by their fs-verity digest. */
export const IMAGES_DIR = `${COMPOSEFS_DIR}/images`
/** Per-deployment state (deployments/DIGEST/etc/{upper,work}). */
export const DEPLOYMENTS_DIR = `${COMPOSEFS_DIR}/deployments`
/** Where the deployment verbs build an image before it is renamed into images/. */
export const STAGING_DIR = `${COMPOSEFS_DIR}/staging`
/** The deployment lock (every state change on the physical root holds it). */
export const LOCK_FILE = `${COMPOSEFS_DIR}/cfsboot.lock`
/** Empty marker: the first boot must enable fs-verity (src/deploy/seal.ts, cfsboot_seal). */
export const SEAL_PENDING = `${COMPOSEFS_DIR}/seal-pending`
/** Shared by every deployment; bind-mounted at /var. */
export const VAR_DIR = 'var'

// --- Boot entries --------------------------------------------------------------------------------

/** Every cfsboot entry's file name (BLS .conf, UKI .efi) starts with this. */
export const ENTRY_PREFIX = 'cfsboot-'
/** The BLS sort-key of cfsboot's entries. */
export const SORT_KEY = 'cfsboot'

// --- What the initramfs records ------------------------------------------------------------------

/** The initramfs's run directory; switch_root carries /run into the booted system. */
export const RUN_DIR = '/run/cfsboot'
/** RUN_DIR/booted.json: what the initramfs mounted (cfsboot-mount.sh writes it). */
export const BOOTED_RECORD = 'booted.json'
/** The keys of booted.json, in the order cfsboot-mount.sh writes them. */
export const BOOTED_KEYS = ['digest', 'verity', 'imageVerity', 'mountMs'] as const

export interface BootedRecord {
  digest: string
  /** The cfsboot.verity= policy the image was mounted with (null: missing or unknown). */
  verity: VerityPolicy | null
  /** Whether the image file had fs-verity (false: checked by reading it). */
  imageVerity: boolean | null
  /** How long the initramfs's mounts took. */
  mountMs: number | null
}

/** booted.json is a few dozen bytes; a bigger file is not one the initramfs wrote. */
export const MAX_BOOTED_RECORD_BYTES = 4096

/** Parses booted.json; null when it is not JSON, too big, or has no valid digest. */
export function parseBootedRecord(text: string): BootedRecord | null {
  if (text.length > MAX_BOOTED_RECORD_BYTES) return null
  let rec: unknown
  try {
    rec = JSON.parse(text)
  } catch {
    return null
  }
  if (typeof rec !== 'object' || rec === null) return null
  const r = rec as Record<string, unknown>
  if (typeof r.digest !== 'string' || !isDigest(r.digest)) return null
  const verity = VERITY_POLICIES.find((p) => p === r.verity) ?? null
  return {
    digest: r.digest,
    verity,
    imageVerity: typeof r.imageVerity === 'boolean' ? r.imageVerity : null,
    mountMs: typeof r.mountMs === 'number' && Number.isFinite(r.mountMs) ? r.mountMs : null,
  }
}

// --- Parsing a command line the way the initramfs does -------------------------------------------

/** A kernel command line is at most a few KiB (COMMAND_LINE_SIZE); refuse to split more. */
export const MAX_CMDLINE_BYTES = 64 * 1024

export interface KernelArg {
  /** The argument as written (quotes included). */
  raw: string
  key: string
  /** The value with its surrounding quotes removed; null for an argument without `=`. */
  value: string | null
}

/**
 * Splits a command line as the kernel and dracut's getarg do: on white space outside double
 * quotes; a value in quotes (`key="a b"`) loses them.
 */
export function splitKernelArgs(cmdline: string): KernelArg[] {
  if (cmdline.length > MAX_CMDLINE_BYTES) return []
  const out: KernelArg[] = []
  let i = 0
  while (i < cmdline.length) {
    while (i < cmdline.length && /\s/.test(cmdline[i]!)) i++
    if (i >= cmdline.length) break
    const start = i
    let quoted = false
    while (i < cmdline.length && (quoted || !/\s/.test(cmdline[i]!))) {
      if (cmdline[i] === '"') quoted = !quoted
      i++
    }
    const raw = cmdline.slice(start, i)
    // A whole argument in quotes ("key=value") is the argument without them.
    const arg = raw.length > 1 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1) : raw
    const eq = arg.indexOf('=')
    const key = (eq < 0 ? arg : arg.slice(0, eq)).replaceAll('"', '')
    let value = eq < 0 ? null : arg.slice(eq + 1)
    if (value?.startsWith('"'))
      value = value.slice(1, value.endsWith('"') && value.length > 1 ? -1 : undefined)
    out.push({raw, key, value})
  }
  return out
}

/** The value of the LAST `key=` on the command line (dracut's getarg: the last one wins). */
export function kernelArg(args: KernelArg[], key: string): string | null {
  let v: string | null = null
  for (const a of args) if (a.key === key && a.value !== null) v = a.value
  return v
}

/**
 * The digest the initramfs boots (cfsboot_digest in dracut/90cfsboot/cfsboot-lib.sh):
 * the last cfsboot.digest=, else the last composefs=. A value that is not 64 lower-case hex
 * digits gives null — the initramfs refuses such a boot instead of trying another argument.
 */
export function digestFromCmdline(cmdline: string): string | null {
  const args = splitKernelArgs(cmdline)
  const v = kernelArg(args, KARG_DIGEST) || kernelArg(args, KARG_COMPOSEFS)
  return v && isDigest(v) ? v : null
}
