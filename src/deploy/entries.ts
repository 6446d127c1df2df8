// Boot Loader Specification Type 1 entries (loader/entries/*.conf), one per deployment.
//
// Which deployment boots next is decided by the boot loader from these files alone:
// systemd-boot sorts entries with no tries left last, then by sort-key, then by version
// (highest first), then by file name (highest first), and boots the first. Every cfsboot entry
// has the same sort-key and a `version` that is a generation number, so "make X the default"
// is one atomic write: X's entry with a generation above all others.
//
// File names: cfsboot-DIGEST16.conf, or with boot counting cfsboot-DIGEST16+LEFT[-DONE].conf
// (the boot loader renames the file as it counts tries).

import {readdir, readFile, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {writeFileAtomic} from '../util/fs.js'
import {DIGEST_KARG, ENTRY_PREFIX, isDigest, SORT_KEY} from './paths.js'

export interface BootEntry {
  /** File name in the entries directory. */
  file: string
  /** The entry's id: the file name without counter and `.conf`. */
  id: string
  /** Image digest from the `options` line (cfsboot.digest=…). */
  digest: string
  generation: number
  /** Boot counting: tries left and done, or null when the entry is not being counted. */
  triesLeft: number | null
  triesDone: number | null
  title: string
  linux: string
  initrd: string
  /** Kernel arguments other than the digest. */
  options: string[]
}

const NAME = /^(cfsboot-[0-9a-f]{16})(?:\+(\d+)(?:-(\d+))?)?\.conf$/

export function entryId(digest: string): string {
  return ENTRY_PREFIX + digest.slice(0, 16)
}

export function entryFileName(id: string, triesLeft: number | null, triesDone: number | null): string {
  if (triesLeft === null) return `${id}.conf`
  return triesDone ? `${id}+${triesLeft}-${triesDone}.conf` : `${id}+${triesLeft}.conf`
}

/** Parses one entry; null when it is not a valid cfsboot entry. */
export function parseEntry(file: string, text: string): BootEntry | null {
  const m = NAME.exec(file)
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
  const options = (fields.get('options') ?? '').split(/\s+/).filter(Boolean)
  const karg = options.find((o) => o.startsWith(DIGEST_KARG + '='))
  const digest = karg?.slice(DIGEST_KARG.length + 1) ?? ''
  const generation = Number(fields.get('version'))
  if (!isDigest(digest) || !Number.isSafeInteger(generation) || !m[1]!.endsWith(digest.slice(0, 16)))
    return null
  return {
    file,
    id: m[1]!,
    digest,
    generation,
    triesLeft: m[2] === undefined ? null : Number(m[2]),
    triesDone: m[3] === undefined ? null : Number(m[3]),
    title: fields.get('title') ?? '',
    linux: fields.get('linux') ?? '',
    initrd: fields.get('initrd') ?? '',
    options: options.filter((o) => o !== karg),
  }
}

export function formatEntry(e: Omit<BootEntry, 'file' | 'id' | 'triesLeft' | 'triesDone'>): string {
  return [
    `title ${e.title}`,
    `version ${e.generation}`,
    `sort-key ${SORT_KEY}`,
    `linux ${e.linux}`,
    `initrd ${e.initrd}`,
    `options ${[`${DIGEST_KARG}=${e.digest}`, ...e.options].join(' ')}`,
    '',
  ].join('\n')
}

export async function readEntries(dir: string): Promise<{entries: BootEntry[]; invalid: string[]}> {
  let names: string[]
  try {
    names = await readdir(dir)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {entries: [], invalid: []}
    throw err
  }
  const entries: BootEntry[] = []
  const invalid: string[] = []
  for (const name of names.sort()) {
    if (!name.startsWith(ENTRY_PREFIX) || !name.endsWith('.conf')) continue
    const e = parseEntry(name, await readFile(join(dir, name), 'utf8'))
    if (e) entries.push(e)
    else invalid.push(name)
  }
  return {entries: bootOrder(entries), invalid}
}

/** The order the boot loader shows and tries entries in; the first one boots by default. */
export function bootOrder(entries: BootEntry[]): BootEntry[] {
  return [...entries].sort((a, b) => {
    const aBad = a.triesLeft === 0 ? 1 : 0
    const bBad = b.triesLeft === 0 ? 1 : 0
    if (aBad !== bBad) return aBad - bBad
    if (a.generation !== b.generation) return b.generation - a.generation
    return a.file < b.file ? 1 : a.file > b.file ? -1 : 0
  })
}

export const nextGeneration = (entries: BootEntry[]): number =>
  entries.reduce((max, e) => Math.max(max, e.generation), 0) + 1

/** Writes (or rewrites in place) an entry; a changed file name replaces the old file. */
export async function writeEntry(dir: string, entry: BootEntry): Promise<void> {
  await writeFileAtomic(join(dir, entry.file), Buffer.from(formatEntry(entry)))
}

export async function removeEntry(dir: string, entry: BootEntry): Promise<void> {
  await rm(join(dir, entry.file), {force: true})
}
