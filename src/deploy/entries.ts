// Boot entries, one per deployment, of two kinds:
//   - BLS Type 1 entries, loader/entries/cfsboot-DIGEST16[+LEFT[-DONE]].conf (plain text: title,
//     version = the generation, sort-key cfsboot, linux, initrd, options with cfsboot.digest=…);
//   - signed unified kernel images (Type 2), EFI/Linux/cfsboot-GGGGGGGGGG-DIGEST16[+LEFT[-DONE]].efi,
//     whose digest is in the signed .cmdline section (src/boot/uki.ts).
//
// Which deployment boots next is decided by the boot loader from these files alone. bootOrder()
// models systemd-boot's order (252, src/boot/efi/boot.c, config_entry_compare): entries with no
// tries left last; then entries with a sort key before those without; then the sort key
// (ascending, strcmp); then the version, newest first; then the id (file name), newest first —
// version and id compared with systemd's strverscmp_improved (verscmp below). "Make X the
// default" is therefore one atomic write: a BLS entry rewritten with the next generation as its
// version, or a UKI renamed with the next generation in its name (UKIs all carry the same
// version, so the name decides; a UKI cannot be rewritten without the signing key).
//
// Boot counting (systemd-boot's Automatic Boot Assessment): +LEFT[-DONE] before the suffix;
// the boot loader renames the file on every try, the booted system drops the counter when the
// boot is good (templates/health/cfsboot-health).

import {readdir, readFile, rename, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {parseOsRelease, parseUkiName, readUkiSections, ukiFileName} from '../boot/uki.js'
import {fsyncDir, writeFileAtomic} from '../util/fs.js'
import {digestFromCmdline, ENTRY_PREFIX, KARG_DIGEST, SORT_KEY, splitKernelArgs} from '../boot/contract.js'
import {isDigest} from './paths.js'

export type EntryKind = 'bls' | 'uki'

export interface BootEntry {
  kind: EntryKind
  /** File name in its directory (loader/entries for bls, EFI/Linux for uki). */
  file: string
  /** The directory the file is in. */
  dir: string
  /** The entry's id: the file name without counter and suffix. */
  id: string
  /** Image digest from the command line (cfsboot.digest=…). */
  digest: string
  generation: number
  /** Boot counting: tries left and done, or null when the entry is not being counted. */
  triesLeft: number | null
  triesDone: number | null
  title: string
  /** BLS: the kernel and initramfs paths on the boot dir; empty for a UKI. */
  linux: string
  initrd: string
  /** Kernel arguments other than the digest. */
  options: string[]
  /** What systemd-boot sorts by: the sort key (null: none) and the version string. */
  sortKey: string | null
  version: string
}

/** The sort key a BLS entry gets when a UKI becomes the default (see makeDefault). */
export const DEMOTED_SORT_KEY = `${SORT_KEY}-previous`

const BLS_NAME = /^(cfsboot-[0-9a-f]{16})(?:\+(\d+)(?:-(\d+))?)?\.conf$/

export function entryId(digest: string): string {
  return ENTRY_PREFIX + digest.slice(0, 16)
}

export function entryFileName(id: string, triesLeft: number | null, triesDone: number | null): string {
  if (triesLeft === null) return `${id}.conf`
  return triesDone ? `${id}+${triesLeft}-${triesDone}.conf` : `${id}+${triesLeft}.conf`
}

/** The UKI directory of a boot dir whose entries directory is `entriesDir` (BOOT/loader/entries). */
export const ukiDirFor = (entriesDir: string): string => join(entriesDir, '..', '..', 'EFI', 'Linux')

/**
 * The digest an entry boots, by the initramfs's rule (digestFromCmdline: the last
 * cfsboot.digest=, else composefs=; '' when that is not a digest), and the other arguments as
 * written. Every cfsboot.digest= is dropped from the options: writeEntry puts back the one
 * that counted, so a rewritten entry boots what it booted before.
 */
function splitCmdline(cmdline: string): {digest: string; options: string[]} {
  const args = splitKernelArgs(cmdline)
  return {
    digest: digestFromCmdline(cmdline) ?? '',
    options: args.filter((a) => a.key !== KARG_DIGEST).map((a) => a.raw),
  }
}

/** Parses one BLS entry; null when it is not a valid cfsboot entry. */
export function parseEntry(file: string, text: string, dir = ''): BootEntry | null {
  const m = BLS_NAME.exec(file)
  if (!m) return null
  const fields = new Map<string, string>()
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const sp = line.search(/\s/)
    const key = sp < 0 ? line : line.slice(0, sp)
    const value = sp < 0 ? '' : line.slice(sp).trim()
    fields.set(key, value)
  }
  const {digest, options} = splitCmdline(fields.get('options') ?? '')
  const version = fields.get('version') ?? ''
  const generation = Number(version)
  if (!isDigest(digest) || !Number.isSafeInteger(generation) || !m[1]!.endsWith(digest.slice(0, 16)))
    return null
  return {
    kind: 'bls',
    file,
    dir,
    id: m[1]!,
    digest,
    generation,
    triesLeft: m[2] === undefined ? null : Number(m[2]),
    triesDone: m[3] === undefined ? null : Number(m[3]),
    title: fields.get('title') ?? '',
    linux: fields.get('linux') ?? '',
    initrd: fields.get('initrd') ?? '',
    options,
    sortKey: fields.get('sort-key') || null,
    version,
  }
}

/** A UKI entry from its file name and its .cmdline/.osrel sections; null when it is not ours. */
export function ukiEntry(file: string, dir: string, cmdline: string, osrel: string): BootEntry | null {
  const n = parseUkiName(file)
  if (!n) return null
  const {digest, options} = splitCmdline(cmdline)
  if (!isDigest(digest) || !digest.startsWith(n.digest16)) return null
  const os = parseOsRelease(osrel)
  return {
    kind: 'uki',
    file,
    dir,
    id: n.id,
    digest,
    generation: n.generation,
    triesLeft: n.triesLeft,
    triesDone: n.triesDone,
    title: os['PRETTY_NAME'] ?? os['NAME'] ?? '',
    linux: '',
    initrd: '',
    options,
    sortKey: os['IMAGE_ID'] ?? os['ID'] ?? null,
    version: os['IMAGE_VERSION'] ?? os['VERSION'] ?? os['VERSION_ID'] ?? os['BUILD_ID'] ?? '',
  }
}

export function formatEntry(
  e: Pick<BootEntry, 'title' | 'generation' | 'sortKey' | 'linux' | 'initrd' | 'digest' | 'options'>,
): string {
  return [
    `title ${e.title}`,
    `version ${e.generation}`,
    `sort-key ${e.sortKey ?? SORT_KEY}`,
    `linux ${e.linux}`,
    `initrd ${e.initrd}`,
    `options ${[`${KARG_DIGEST}=${e.digest}`, ...e.options].join(' ')}`,
    '',
  ].join('\n')
}

async function names(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

/**
 * Every cfsboot entry of a boot dir, in boot order: BLS entries in `dir` and UKIs in `ukiDir`
 * (default: BOOT/EFI/Linux beside BOOT/loader/entries). Files that look like ours but do not
 * parse are listed in `invalid`.
 */
export async function readEntries(
  dir: string,
  ukiDir: string = ukiDirFor(dir),
): Promise<{entries: BootEntry[]; invalid: string[]}> {
  const entries: BootEntry[] = []
  const invalid: string[] = []
  for (const name of await names(dir)) {
    if (!name.startsWith(ENTRY_PREFIX) || !name.endsWith('.conf')) continue
    const e = parseEntry(name, await readFile(join(dir, name), 'utf8'), dir)
    if (e) entries.push(e)
    else invalid.push(name)
  }
  for (const name of await names(ukiDir)) {
    if (!name.startsWith(ENTRY_PREFIX) || !name.toLowerCase().endsWith('.efi')) continue
    let e: BootEntry | null = null
    try {
      const s = await readUkiSections(join(ukiDir, name))
      e = ukiEntry(name, ukiDir, s.cmdline, s.osrel)
    } catch {
      e = null
    }
    if (e) entries.push(e)
    else invalid.push(`EFI/Linux/${name}`)
  }
  return {entries: bootOrder(entries), invalid}
}

const isDigit = (c: string | undefined): boolean => c !== undefined && c >= '0' && c <= '9'
const isAlpha = (c: string | undefined): boolean =>
  c !== undefined && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
const versionChar = (c: string | undefined): boolean =>
  isDigit(c) || isAlpha(c) || c === '~' || c === '-' || c === '^' || c === '.'
const cmp = (x: number | string, y: number | string): number => (x < y ? -1 : x > y ? 1 : 0)

/**
 * systemd's strverscmp_improved (an rpmvercmp variant): strings split into numeric and alphabetic
 * segments, each optionally after '~' (oldest), '-', '^' or '.'; numbers compared by value,
 * words as text; more segments is newer. Negative when `a` is older than `b`.
 */
export function verscmp(a: string, b: string): number {
  if (!a || !b) return cmp(a, b)
  let i = 0
  let j = 0
  for (;;) {
    while (i < a.length && !versionChar(a[i])) i++
    while (j < b.length && !versionChar(b[j])) j++
    if (a[i] === '~' || b[j] === '~') {
      const r = cmp(a[i] !== '~' ? 1 : 0, b[j] !== '~' ? 1 : 0)
      if (r) return r
      i++
      j++
    }
    if (i >= a.length || j >= b.length) return cmp(a.slice(i), b.slice(j))
    for (const sep of ['-', '^', '.']) {
      if (a[i] === sep || b[j] === sep) {
        const r = cmp(a[i] !== sep ? 1 : 0, b[j] !== sep ? 1 : 0)
        if (r) return r
        i++
        j++
      }
    }
    if (isDigit(a[i]) || isDigit(b[j])) {
      while (a[i] === '0') i++
      while (b[j] === '0') j++
      let ie = i
      let je = j
      while (isDigit(a[ie])) ie++
      while (isDigit(b[je])) je++
      const r = cmp(ie - i, je - j) || cmp(a.slice(i, ie), b.slice(j, je))
      if (r) return r
      i = ie
      j = je
    } else {
      let ie = i
      let je = j
      while (isAlpha(a[ie])) ie++
      while (isAlpha(b[je])) je++
      const n = Math.min(ie - i, je - j)
      const r = cmp(a.slice(i, i + n), b.slice(j, j + n)) || cmp(ie - i, je - j)
      if (r) return r
      i = ie
      j = je
    }
  }
}

/** systemd-boot's comparison of two entries (negative: `a` comes first). */
export function compareEntries(a: BootEntry, b: BootEntry): number {
  let r = cmp(a.triesLeft === 0 ? 1 : 0, b.triesLeft === 0 ? 1 : 0)
  if (r) return r
  r = cmp(a.sortKey === null ? 1 : 0, b.sortKey === null ? 1 : 0)
  if (r) return r
  if (a.sortKey !== null && b.sortKey !== null) {
    r = cmp(a.sortKey, b.sortKey) || -verscmp(a.version, b.version)
    if (r) return r
  }
  // systemd-boot's id is the file name, lower-cased.
  r = -verscmp(a.file.toLowerCase(), b.file.toLowerCase())
  if (r) return r
  if (a.triesLeft === null || b.triesLeft === null) return 0
  return -cmp(a.triesLeft, b.triesLeft) || cmp(a.triesDone ?? 0, b.triesDone ?? 0)
}

/** The order the boot loader shows and tries entries in; the first one boots by default. */
export function bootOrder(entries: BootEntry[]): BootEntry[] {
  return [...entries].sort(compareEntries)
}

export const nextGeneration = (entries: BootEntry[]): number =>
  entries.reduce((max, e) => Math.max(max, e.generation), 0) + 1

/** Writes (or rewrites in place) a BLS entry. */
export async function writeEntry(dir: string, entry: BootEntry): Promise<void> {
  await writeFileAtomic(join(dir, entry.file), Buffer.from(formatEntry(entry)))
}

export async function removeEntry(dir: string, entry: BootEntry): Promise<void> {
  await rm(join(entry.kind === 'uki' && entry.dir ? entry.dir : dir, entry.file), {force: true})
}

/**
 * Makes `target` the default with `generation`, and drops its boot counter (a deployment the
 * administrator chose again is a known state, even one whose tries ran out). One write switches:
 *   - BLS: the entry rewritten with the new version (then the old file, if the name changed, removed);
 *   - UKI: a rename to the name with the new generation. BLS entries with cfsboot's sort key
 *     would still sort above every UKI (their version is a generation, a UKI's is fixed), so
 *     they get DEMOTED_SORT_KEY afterwards — the old default last, so the switch is one step.
 */
export async function makeDefault(
  entriesDir: string,
  all: BootEntry[],
  target: BootEntry,
  generation: number,
): Promise<BootEntry> {
  if (target.kind === 'bls') {
    const file = entryFileName(target.id, null, null)
    const updated: BootEntry = {
      ...target,
      file,
      dir: entriesDir,
      generation,
      version: String(generation),
      sortKey: SORT_KEY,
      triesLeft: null,
      triesDone: null,
    }
    await writeEntry(entriesDir, updated)
    if (file !== target.file) await rm(join(entriesDir, target.file), {force: true})
    await fsyncDir(entriesDir)
    return updated
  }
  const file = ukiFileName(generation, target.digest, null)
  if (file !== target.file) {
    await rename(join(target.dir, target.file), join(target.dir, file))
    await fsyncDir(target.dir)
  }
  const updated: BootEntry = {...target, file, generation, triesLeft: null, triesDone: null}
  await demoteBls(entriesDir, all)
  return updated
}

/** Gives the BLS entries that would sort above every UKI the demoted sort key (see makeDefault). */
export async function demoteBls(entriesDir: string, all: BootEntry[]): Promise<void> {
  const above = bootOrder(all).filter((e) => e.kind === 'bls' && e.sortKey === SORT_KEY)
  if (above.length === 0) return
  for (const e of above.reverse()) await writeEntry(entriesDir, {...e, sortKey: DEMOTED_SORT_KEY})
  await fsyncDir(entriesDir)
}
