// What the running kernel can do, read from its build configuration.
//
// fs-verity cannot be probed by mounting: on a kernel without CONFIG_FS_VERITY, overlayfs
// still accepts `verity=require` and then fails every read of a data file with EIO ("lower
// file … has no fs-verity digest"), which is a confusing way to learn it. The configuration
// (/proc/config.gz, or the distribution's /boot/config-$(uname -r)) says it up front.

import {readFile} from 'node:fs/promises'
import {release} from 'node:os'
import {gunzipSync} from 'node:zlib'

/** The kernel's build configuration as text, or null when the machine does not expose it. */
export async function kernelConfig(): Promise<string | null> {
  // CFSBOOT_KERNEL_CONFIG: a configuration file to read instead (tests of device behaviour).
  const override = process.env.CFSBOOT_KERNEL_CONFIG
  if (override) return readFile(override, 'latin1').catch(() => null)
  try {
    return gunzipSync(await readFile('/proc/config.gz')).toString('latin1')
  } catch {
    // not built with CONFIG_IKCONFIG_PROC; try the distribution's copy
  }
  try {
    return await readFile(`/boot/config-${release()}`, 'latin1')
  } catch {
    return null
  }
}

/** Whether a CONFIG_ option is built in or a module; null when the configuration is unknown. */
export async function kernelHasOption(option: string): Promise<boolean | null> {
  const config = await kernelConfig()
  if (config === null) return null
  return new RegExp(`^${option}=[ym]$`, 'm').test(config)
}

/** true / false, or null when it cannot be told (no configuration available). */
export async function kernelHasFsVerity(): Promise<boolean | null> {
  return kernelHasOption('CONFIG_FS_VERITY')
}
