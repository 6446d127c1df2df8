// Which image is running: the initramfs records it in /run/cfsboot/booted.json; without that
// record (another initramfs), the kernel command line says which digest was asked for. The
// names and both parsers are the boot contract's (src/boot/contract.ts); this file only reads.
// CFSBOOT_RUN_DIR and CFSBOOT_CMDLINE point elsewhere for tests.

import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {BOOTED_RECORD, digestFromCmdline, parseBootedRecord, RUN_DIR} from '../boot/contract.js'

export async function bootedDigest(): Promise<string | null> {
  const runDir = process.env.CFSBOOT_RUN_DIR ?? RUN_DIR
  const text = await readFile(join(runDir, BOOTED_RECORD), 'utf8').catch(() => null)
  const rec = text === null ? null : parseBootedRecord(text)
  // No (valid) record: fall back to the command line.
  if (rec) return rec.digest
  try {
    return digestFromCmdline(await readFile(process.env.CFSBOOT_CMDLINE ?? '/proc/cmdline', 'utf8'))
  } catch {
    return null
  }
}
