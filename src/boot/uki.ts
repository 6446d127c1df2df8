// Signed unified kernel images (UKIs, Boot Loader Specification Type 2 entries) for deployments.
//
// A UKI is systemd's EFI stub with the kernel (.linux), the initramfs (.initrd), the kernel
// command line (.cmdline) and an os-release (.osrel) added as PE sections, signed as a whole for
// Secure Boot. Its command line carries cfsboot.digest=…, so the image digest is covered by the
// signature: a changed digest is a changed binary the firmware refuses (docs/trust.md).
//
// Ordering without re-signing. A device has no signing key when it rolls back, so the order of
// UKIs must not depend on anything inside them. systemd-boot (252, src/boot/efi/boot.c,
// config_entry_compare) orders entries by: no tries left last; then the sort key (Type 2: the
// .osrel's IMAGE_ID, else ID); then the version, newest first (IMAGE_VERSION, else VERSION, else
// VERSION_ID); then the id — the file name — newest first, both compared by strverscmp_improved.
// Every cfsboot UKI has the same IMAGE_ID and IMAGE_VERSION, so the file name decides, and the
// generation is in it: cfsboot-0000000007-DIGEST16[+LEFT[-DONE]].efi. Rollback is a rename.

import {open, readFile, rm, writeFile} from 'node:fs/promises'
import {mkdtemp} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {AddedSection, EFI_STUB, objcopyAddSections, sbsign} from '../system/uki-tools.js'
import {endOfImage, MAX_PE_HEADER_BYTES, parsePeHeaders, sectionRange, sectionText} from './pe.js'

/** The .osrel IMAGE_ID of every cfsboot UKI: systemd-boot's sort key for them. */
export const UKI_IMAGE_ID = 'cfsboot'
/** The .osrel IMAGE_VERSION of every cfsboot UKI: equal for all, so the file name orders them. */
export const UKI_IMAGE_VERSION = '0'
/** Digits of the generation in a UKI's file name (zero-padded, so names also sort as text). */
export const UKI_GENERATION_DIGITS = 10
/** .cmdline and .osrel are small; a larger one is not ours. */
export const MAX_UKI_TEXT_SECTION = 64 * 1024

const UKI_NAME = /^(cfsboot-(\d{10})-([0-9a-f]{16}))(?:\+(\d+)(?:-(\d+))?)?\.efi$/

export interface UkiName {
  /** cfsboot-GGGGGGGGGG-DIGEST16, the name without counter and suffix. */
  id: string
  generation: number
  digest16: string
  triesLeft: number | null
  triesDone: number | null
}

export function ukiFileName(
  generation: number,
  digest: string,
  triesLeft: number | null,
  triesDone: number | null = null,
): string {
  if (!Number.isSafeInteger(generation) || generation < 0 || generation >= 10 ** UKI_GENERATION_DIGITS)
    throw new InvalidInputError(`generation ${generation} does not fit a UKI file name`)
  const id = `cfsboot-${String(generation).padStart(UKI_GENERATION_DIGITS, '0')}-${digest.slice(0, 16)}`
  if (triesLeft === null) return `${id}.efi`
  return triesDone ? `${id}+${triesLeft}-${triesDone}.efi` : `${id}+${triesLeft}.efi`
}

export function parseUkiName(file: string): UkiName | null {
  const m = UKI_NAME.exec(file)
  if (!m) return null
  return {
    id: m[1]!,
    generation: Number(m[2]),
    digest16: m[3]!,
    triesLeft: m[4] === undefined ? null : Number(m[4]),
    triesDone: m[5] === undefined ? null : Number(m[5]),
  }
}

/** os-release text → key/value pairs (quotes removed). */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim())
    if (!m) continue
    let v = m[2]!
    if (/^(["']).*\1$/.test(v)) v = v.slice(1, -1).replace(/\\(["\\$`])/g, '$1')
    out[m[1]!] = v
  }
  return out
}

const quote = (v: string): string => `"${v.replace(/[\\"$`]/g, (c) => '\\' + c).replace(/\n/g, ' ')}"`

/** The .osrel of a cfsboot UKI: the image's names for the menu, cfsboot's fixed sort key and version. */
export function ukiOsRelease(osRelease: Record<string, string>, title: string): string {
  const keep = ['NAME', 'ID', 'ID_LIKE', 'VERSION', 'VERSION_ID', 'BUILD_ID', 'HOME_URL']
  const lines = [`PRETTY_NAME=${quote(title)}`]
  for (const k of keep) if (osRelease[k] !== undefined) lines.push(`${k}=${quote(osRelease[k])}`)
  lines.push(`IMAGE_ID=${UKI_IMAGE_ID}`, `IMAGE_VERSION=${UKI_IMAGE_VERSION}`)
  return lines.join('\n') + '\n'
}

export interface UkiSections {
  cmdline: string
  osrel: string
}

/** Reads .cmdline and .osrel of a UKI file without reading the kernel and initramfs. */
export async function readUkiSections(path: string): Promise<UkiSections> {
  const fh = await open(path, 'r')
  try {
    const size = (await fh.stat()).size
    const head = Buffer.alloc(Math.min(size, MAX_PE_HEADER_BYTES))
    await fh.read(head, 0, head.length, 0)
    const h = parsePeHeaders(head)
    const text = async (name: string): Promise<string> => {
      const s = h.sections.find((x) => x.name === name)
      if (!s) throw new InvalidInputError(`${path}: no ${name} section`)
      const r = sectionRange(s, size)
      if (r.length > MAX_UKI_TEXT_SECTION) throw new InvalidInputError(`${path}: ${name} section too large`)
      const buf = Buffer.alloc(r.length)
      await fh.read(buf, 0, r.length, r.offset)
      return sectionText(buf)
    }
    return {cmdline: await text('.cmdline'), osrel: await text('.osrel')}
  } finally {
    await fh.close()
  }
}

export interface UkiBuild {
  kernel: Buffer
  initramfs: Buffer
  cmdline: string
  osrel: string
  /** Where the signed UKI goes. */
  out: string
  key: string
  cert: string
  stub?: string
}

/** Page alignment for the sections we add (what ukify does). */
const SECTION_ALIGN = 0x1000

/**
 * Builds and signs a UKI. The sections go above the stub's own, in ukify's order (.linux last:
 * the kernel may use memory beyond its section when it decompresses).
 */
export async function buildUki(b: UkiBuild): Promise<void> {
  const stub = b.stub ?? EFI_STUB
  const stubBytes = await readFile(stub).catch(() => {
    throw new InvalidInputError(`UKI stub ${stub} not found (Debian package systemd-boot-efi)`)
  })
  const h = parsePeHeaders(stubBytes)
  const work = await mkdtemp(join(tmpdir(), 'cfsboot-uki-'))
  try {
    const parts: [string, Buffer][] = [
      ['.osrel', Buffer.from(b.osrel)],
      ['.cmdline', Buffer.from(b.cmdline.trim() + '\n')],
      ['.initrd', b.initramfs],
      ['.linux', b.kernel],
    ]
    const sections: AddedSection[] = []
    let vma = endOfImage(h, SECTION_ALIGN)
    for (const [name, data] of parts) {
      const file = join(work, name.slice(1))
      await writeFile(file, data)
      sections.push({name, file, vma})
      const a = BigInt(SECTION_ALIGN)
      vma += ((BigInt(data.length) + a - 1n) / a) * a
    }
    const unsigned = join(work, 'unsigned.efi')
    await objcopyAddSections(stub, sections, unsigned)
    await sbsign({key: b.key, cert: b.cert, input: unsigned, out: b.out})
  } finally {
    await rm(work, {recursive: true, force: true})
  }
}
