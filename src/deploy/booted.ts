// Which image is running: the initramfs records it in /run/cfsboot/booted.json; without that
// record (another initramfs), the kernel command line says which digest was asked for.
// CFSBOOT_RUN_DIR and CFSBOOT_CMDLINE point elsewhere for tests.

import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {DEFAULT_RUN_DIR, DIGEST_KARG, isDigest} from './paths.js'

export const BOOTED_RECORD = 'booted.json'

export function digestFromCmdline(cmdline: string): string | null {
  for (const arg of cmdline.trim().split(/\s+/)) {
    for (const key of [DIGEST_KARG, 'composefs']) {
      if (arg.startsWith(key + '=')) {
        const v = arg.slice(key.length + 1)
        if (isDigest(v)) return v
      }
    }
  }
  return null
}

export async function bootedDigest(): Promise<string | null> {
  const runDir = process.env.CFSBOOT_RUN_DIR ?? DEFAULT_RUN_DIR
  try {
    const rec = JSON.parse(await readFile(join(runDir, BOOTED_RECORD), 'utf8')) as {digest?: unknown}
    if (typeof rec.digest === 'string' && isDigest(rec.digest)) return rec.digest
  } catch {
    // No record: fall back to the command line.
  }
  try {
    return digestFromCmdline(await readFile(process.env.CFSBOOT_CMDLINE ?? '/proc/cmdline', 'utf8'))
  } catch {
    return null
  }
}
