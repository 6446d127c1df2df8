// The boot loader half of the boot directory (the ESP): systemd-boot and loader/loader.conf.
// `deploy` writes the other half (loader/entries/*.conf and cfsboot/KVER-HASH/).
//
//   EFI/BOOT/BOOTX64.EFI           systemd-boot, under the removable-media name firmware boots
//                                  without any boot variable (a factory disk has none)
//   EFI/systemd/systemd-bootx64.efi  the same, where bootctl puts it (for later `bootctl update`)
//   loader/loader.conf             templates/loader.conf: timeout 0, no default line
//
// Why the files are copied rather than `bootctl install`ed: bootctl insists on a mounted FAT ESP
// (the installer fills the ESP with mtools, see src/system/fat.ts) and copies exactly these
// binaries. When the boot dir *is* a mounted FAT filesystem and bootctl exists, it is used.

import {mkdir, mkdtemp, readFile, rm, stat} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {UnsupportedError} from '../errors.js'
import {bootctlInstall} from '../system/disk.js'
import {readMountInfo} from '../system/mountinfo.js'
import {sbsign} from '../system/uki-tools.js'
import {writeFileAtomic} from '../util/fs.js'

/** Where Debian's systemd-boot-efi (and the signed variant) put the binaries. */
export const SYSTEMD_BOOT_DIR = '/usr/lib/systemd/boot/efi'

/** templates/ of this package (this file runs from dist/src/install/). */
const TEMPLATES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../templates')

/** UEFI's architecture suffixes. */
const EFI_ARCH: Record<string, string> = {x64: 'x64', arm64: 'aa64', ia32: 'ia32', riscv64: 'riscv64'}

export interface BootLoaderResult {
  /** How systemd-boot got there. */
  installedBy: 'copy' | 'bootctl'
  /** Signed for Secure Boot with the UKI key (install --uki-key/--uki-cert). */
  signed: boolean
  /** The systemd-boot binary used. */
  source: string
  /** Files written, relative to the boot dir. */
  files: string[]
}

/** systemd-boot for this architecture: the signed binary when the signed package is installed. */
export async function findSystemdBoot(arch = process.arch): Promise<{source: string; arch: string}> {
  const efiArch = EFI_ARCH[arch]
  if (!efiArch) throw new UnsupportedError(`no UEFI boot loader name for architecture ${arch}`)
  for (const name of [`systemd-boot${efiArch}.efi.signed`, `systemd-boot${efiArch}.efi`]) {
    const p = join(SYSTEMD_BOOT_DIR, name)
    if (
      await stat(p).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      return {source: p, arch: efiArch}
  }
  throw new UnsupportedError(
    `systemd-boot is not installed (${SYSTEMD_BOOT_DIR}/systemd-boot${efiArch}.efi; Debian package systemd-boot-efi)`,
  )
}

async function isMountedFat(dir: string): Promise<boolean> {
  const p = resolve(dir)
  const m = (await readMountInfo()).filter((e) => e.mountPoint === p).at(-1)
  return m?.fsType === 'vfat'
}

export async function loaderConf(): Promise<Buffer> {
  return readFile(join(TEMPLATES, 'loader.conf'))
}

/** systemd-boot's bytes, signed with `sign` when given (Secure Boot: the firmware checks it first). */
async function bootLoaderBytes(source: string, sign?: {key: string; cert: string}): Promise<Buffer> {
  if (!sign) return readFile(source)
  const work = await mkdtemp(join(tmpdir(), 'cfsboot-sign-'))
  try {
    const out = join(work, 'signed.efi')
    await sbsign({key: sign.key, cert: sign.cert, input: source, out})
    return await readFile(out)
  } finally {
    await rm(work, {recursive: true, force: true})
  }
}

/**
 * Puts systemd-boot and loader.conf into `bootDir`. With `sign`, systemd-boot is signed with
 * that key (an already signed .efi.signed binary gets a second signature; either verifies), and
 * copied rather than bootctl-installed (bootctl would copy the unsigned one).
 */
export async function installBootLoader(
  bootDir: string,
  sign?: {key: string; cert: string},
): Promise<BootLoaderResult> {
  const {source, arch} = await findSystemdBoot()
  const removable = `EFI/BOOT/BOOT${arch.toUpperCase()}.EFI`
  const own = `EFI/systemd/systemd-boot${arch}.efi`
  let installedBy: BootLoaderResult['installedBy'] = 'copy'
  if (!sign && (await isMountedFat(bootDir)) && (await bootctlInstall(bootDir))) {
    installedBy = 'bootctl'
  } else {
    const bytes = await bootLoaderBytes(source, sign)
    for (const rel of [removable, own]) {
      const dst = join(bootDir, rel)
      await mkdir(dirname(dst), {recursive: true})
      await writeFileAtomic(dst, bytes)
    }
  }
  // bootctl writes a commented-out loader.conf; ours replaces it.
  await mkdir(join(bootDir, 'loader', 'entries'), {recursive: true})
  await writeFileAtomic(join(bootDir, 'loader', 'loader.conf'), await loaderConf())
  return {installedBy, signed: !!sign, source, files: [removable, own, 'loader/loader.conf']}
}
