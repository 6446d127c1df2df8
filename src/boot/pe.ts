// A small reader for PE/COFF executables (EFI binaries): the section table, and the bytes of a
// section. Enough to read a unified kernel image's .cmdline and .osrel back, and to find where a
// UKI stub's own sections end (new sections go above them). Pure: works on Buffers.
//
// Layout (Microsoft PE format): the DOS header's e_lfanew (u32 at 0x3c) points at "PE\0\0",
// followed by the 20-byte COFF header (NumberOfSections u16 at +6, SizeOfOptionalHeader u16 at
// +16), the optional header (magic 0x20b for PE32+, 0x10b for PE32) and the section table: 40
// bytes per section (name[8], VirtualSize, VirtualAddress, SizeOfRawData, PointerToRawData, …).
// Every offset is checked against the buffer: a UKI on an ESP is untrusted input.

import {InvalidInputError} from '../errors.js'

/** The PE format allows at most 96 sections. */
export const MAX_PE_SECTIONS = 96
/** Headers we are willing to read before the section table ends (e_lfanew and the tables). */
export const MAX_PE_HEADER_BYTES = 64 * 1024

export interface PeSection {
  /** Section name (up to 8 bytes; long "/NNN" string-table names are returned as they are). */
  name: string
  virtualSize: number
  /** Relative virtual address (add imageBase for the VMA objcopy speaks of). */
  virtualAddress: number
  rawSize: number
  rawOffset: number
}

export interface PeHeaders {
  pe32plus: boolean
  imageBase: bigint
  sectionAlignment: number
  fileAlignment: number
  sizeOfImage: number
  sections: PeSection[]
}

function bad(what: string): never {
  throw new InvalidInputError(`not a valid PE/EFI binary: ${what}`)
}

/** Parses the headers. `buf` needs to hold the file from offset 0 through the section table. */
export function parsePeHeaders(buf: Buffer): PeHeaders {
  if (buf.length < 0x40 || buf.readUInt16LE(0) !== 0x5a4d) bad('no MZ header')
  const pe = buf.readUInt32LE(0x3c)
  if (pe + 24 > buf.length || pe > MAX_PE_HEADER_BYTES) bad('PE header offset out of range')
  if (buf.readUInt32LE(pe) !== 0x00004550) bad('no PE signature')
  const coff = pe + 4
  const count = buf.readUInt16LE(coff + 2)
  const optSize = buf.readUInt16LE(coff + 16)
  if (count > MAX_PE_SECTIONS) bad(`${count} sections (at most ${MAX_PE_SECTIONS})`)
  const opt = coff + 20
  if (opt + optSize > buf.length || optSize < 64) bad('optional header truncated')
  const magic = buf.readUInt16LE(opt)
  if (magic !== 0x20b && magic !== 0x10b) bad(`optional header magic 0x${magic.toString(16)}`)
  const pe32plus = magic === 0x20b
  const imageBase = pe32plus ? buf.readBigUInt64LE(opt + 24) : BigInt(buf.readUInt32LE(opt + 28))
  const table = opt + optSize
  if (table + count * 40 > buf.length) bad('section table truncated')
  const sections: PeSection[] = []
  for (let i = 0; i < count; i++) {
    const s = table + i * 40
    const raw = buf.subarray(s, s + 8)
    const nul = raw.indexOf(0)
    sections.push({
      name: raw.subarray(0, nul < 0 ? 8 : nul).toString('latin1'),
      virtualSize: buf.readUInt32LE(s + 8),
      virtualAddress: buf.readUInt32LE(s + 12),
      rawSize: buf.readUInt32LE(s + 16),
      rawOffset: buf.readUInt32LE(s + 20),
    })
  }
  return {
    pe32plus,
    imageBase,
    sectionAlignment: buf.readUInt32LE(opt + 32),
    fileAlignment: buf.readUInt32LE(opt + 36),
    sizeOfImage: buf.readUInt32LE(opt + 56),
    sections,
  }
}

/** Where a section's bytes are in the file: the raw data, cut to the section's real (virtual) size. */
export function sectionRange(s: PeSection, fileSize: number): {offset: number; length: number} {
  const length = s.virtualSize ? Math.min(s.virtualSize, s.rawSize) : s.rawSize
  if (s.rawOffset + length > fileSize) bad(`section ${s.name} extends past the end of the file`)
  return {offset: s.rawOffset, length}
}

/** The bytes of a named section of a whole-file buffer, or null when there is no such section. */
export function readSection(buf: Buffer, name: string): Buffer | null {
  const s = parsePeHeaders(buf).sections.find((x) => x.name === name)
  if (!s) return null
  const r = sectionRange(s, buf.length)
  return buf.subarray(r.offset, r.offset + r.length)
}

/** Text of a section such as .cmdline or .osrel: trailing NULs and one newline removed. */
export function sectionText(data: Buffer): string {
  let end = data.length
  while (end > 0 && data[end - 1] === 0) end--
  return data.subarray(0, end).toString('utf8').replace(/\n$/, '')
}

/** The first VMA above every section of the image (image base included), aligned to `align`. */
export function endOfImage(h: PeHeaders, align = 0x1000): bigint {
  let end = BigInt(h.sizeOfImage)
  for (const s of h.sections) {
    const e = BigInt(s.virtualAddress) + BigInt(Math.max(s.virtualSize, s.rawSize))
    if (e > end) end = e
  }
  const a = BigInt(align)
  return h.imageBase + ((end + a - 1n) / a) * a
}
