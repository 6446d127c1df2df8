// What `cfsboot status` learns about boot assessment beyond the entries' names:
//   - the health record the on-device program (templates/health/cfsboot-health) leaves in the
//     shared /var for each deployment it checked: SYSROOT/var/lib/cfsboot/health/DIGEST.json;
//   - the boot loader's EFI variables (systemd-boot's vendor GUID), when efivarfs is readable:
//     which entry it booted (LoaderEntrySelected), the counted file it booted
//     (LoaderBootCountPath), and whether Secure Boot is on.
// CFSBOOT_EFIVARS_DIR points elsewhere for tests (a directory that does not exist: no variables).

import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {isDigest} from '../util/digest.js'

/** systemd-boot's vendor GUID for the Loader* variables. */
export const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'
/** UEFI's global variable GUID (SecureBoot). */
export const EFI_GLOBAL_GUID = '8be4df61-93ca-11d2-aa0d-00e098032b8c'
export const DEFAULT_EFIVARS_DIR = '/sys/firmware/efi/efivars'
/** Relative to /var (and to SYSROOT/var, the same directory). */
export const HEALTH_RECORD_DIR = 'lib/cfsboot/health'
const MAX_RECORD_BYTES = 64 * 1024
const MAX_VAR_BYTES = 4096

export interface HealthRecord {
  result: 'good' | 'failed'
  /** When the checks ran (ISO 8601, UTC). */
  time: string
  /** The entry file that was booted (what was renamed when good), or null when unknown. */
  entry: string | null
  /** Required checks that failed, as "NAME (exit N)" or "NAME (timed out after N s)". */
  failed: string[]
  /** Wanted checks that failed (logged, not fatal). */
  wantedFailed: string[]
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string').map((x) => x.slice(0, 300)) : []

/** The record of the last health run for `digest`, or null (none, or unreadable). */
export async function readHealthRecord(varDir: string, digest: string): Promise<HealthRecord | null> {
  if (!isDigest(digest)) return null
  try {
    const text = await readFile(join(varDir, HEALTH_RECORD_DIR, `${digest}.json`), 'utf8')
    if (text.length > MAX_RECORD_BYTES) return null
    const r = JSON.parse(text) as Record<string, unknown>
    if (r['digest'] !== digest || (r['result'] !== 'good' && r['result'] !== 'failed')) return null
    return {
      result: r['result'],
      time: typeof r['time'] === 'string' ? r['time'] : '',
      entry: typeof r['entry'] === 'string' && r['entry'] ? r['entry'] : null,
      failed: strings(r['failed']),
      wantedFailed: strings(r['wantedFailed']),
    }
  } catch {
    return null
  }
}

export interface LoaderVars {
  /** LoaderEntrySelected: the id of the entry systemd-boot booted (its file name). */
  entrySelected: string | null
  /** LoaderBootCountPath: the counted entry file it booted, e.g. \loader\entries\x+1-1.conf. */
  bootCountPath: string | null
  /** SecureBoot: true/false, null when the variable is absent. */
  secureBoot: boolean | null
}

/** An efivarfs file: 4 bytes of attributes, then the value. */
async function readVar(dir: string, name: string): Promise<Buffer | null> {
  try {
    const b = await readFile(join(dir, name))
    return b.length >= 4 && b.length <= MAX_VAR_BYTES ? b.subarray(4) : null
  } catch {
    return null
  }
}

/** A UTF-16LE string value without its terminating NUL. */
export function utf16Value(b: Buffer | null): string | null {
  if (!b) return null
  const s = b.subarray(0, b.length - (b.length % 2)).toString('utf16le')
  const nul = s.indexOf('\0')
  return nul < 0 ? s : s.slice(0, nul)
}

/** The loader's variables, or null when efivarfs is not readable here (not booted by UEFI, a host). */
export async function readLoaderVars(
  dir = process.env.CFSBOOT_EFIVARS_DIR ?? DEFAULT_EFIVARS_DIR,
): Promise<LoaderVars | null> {
  const [selected, countPath, secureBoot] = await Promise.all([
    readVar(dir, `LoaderEntrySelected-${LOADER_GUID}`),
    readVar(dir, `LoaderBootCountPath-${LOADER_GUID}`),
    readVar(dir, `SecureBoot-${EFI_GLOBAL_GUID}`),
  ])
  if (!selected && !countPath && !secureBoot) return null
  return {
    entrySelected: utf16Value(selected),
    bootCountPath: utf16Value(countPath),
    secureBoot: secureBoot && secureBoot.length >= 1 ? secureBoot[0] === 1 : null,
  }
}
