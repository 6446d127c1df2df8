// An inode's data in a composefs image: where its blocks and inline tail are (DataLocator),
// and directory blocks decoded into entries. All reads are bounds-checked through ImageBuffer.

import {cmpBytes} from '../../tree/node.js'
import {fail, type ImageBuffer} from './image-header.js'
import {BLOCK_SIZE, DIRENT_SIZE, Layout} from './layout.js'

export interface DirEntry {
  name: string
  nid: number
}

/** Where an inode's data is: whole blocks at `dataOff`, and for inline layout a tail after the inode. */
export class DataLocator {
  constructor(
    private readonly img: ImageBuffer,
    private readonly nid: number,
    private readonly size: number,
    private readonly layout: number,
    private readonly dataOff: number,
    private readonly tailOff: number,
  ) {}

  /** [offset, length] of each piece of the data, in order, all bounds-checked. */
  blocks(what: string): [number, number][] {
    const {img, nid, size} = this
    if (size === 0) return []
    const nBlocks = Math.ceil(size / BLOCK_SIZE)
    const inline = this.layout === Layout.flatInline
    const fullBlocks = inline ? nBlocks - 1 : nBlocks
    const inBlocks = inline ? fullBlocks * BLOCK_SIZE : size
    if (inBlocks > 0) img.need(this.dataOff, inBlocks, `${what} data blocks`, nid)
    const pieces: [number, number][] = []
    for (let b = 0; b < fullBlocks; b++) {
      pieces.push([this.dataOff + b * BLOCK_SIZE, Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE)])
    }
    if (inline) {
      const tail = size - fullBlocks * BLOCK_SIZE
      img.need(this.tailOff, tail, `${what} inline data`, nid)
      // The kernel requires the inline tail to stay in the inode's block.
      if (Math.floor(this.tailOff / BLOCK_SIZE) !== Math.floor((this.tailOff + tail - 1) / BLOCK_SIZE)) {
        fail(`${what} inline data crosses a block boundary`, nid)
      }
      pieces.push([this.tailOff, tail])
    }
    return pieces
  }

  /** The data as one copied buffer (callers cap `size` first). */
  read(what: string): Buffer {
    return Buffer.concat(this.blocks(what).map(([off, len]) => this.img.buf.subarray(off, off + len)))
  }
}

/** The entries of a directory, checked to be in strictly increasing byte order. */
export function readDirectory(
  img: ImageBuffer,
  nid: number,
  data: DataLocator,
  maxNameLength: number,
): DirEntry[] {
  const entries: DirEntry[] = []
  let previous: string | null = null
  for (const [blockOff, blockLen] of data.blocks('directory')) {
    for (const e of readDirBlock(img, nid, blockOff, blockLen, maxNameLength)) {
      if (previous !== null && cmpBytes(previous, e.name) >= 0) fail('directory entries out of order', nid)
      previous = e.name
      entries.push(e)
    }
  }
  return entries
}

function readDirBlock(
  img: ImageBuffer,
  nid: number,
  off: number,
  len: number,
  maxNameLength: number,
): DirEntry[] {
  img.need(off, len, 'directory block', nid)
  if (len < DIRENT_SIZE) fail('directory block too small', nid)
  const namesStart = img.u16(off + 8, 'dirent', nid)
  if (namesStart === 0 || namesStart % DIRENT_SIZE !== 0 || namesStart > len) {
    fail('bad dirent count', nid)
  }
  const count = namesStart / DIRENT_SIZE
  const out: DirEntry[] = []
  for (let i = 0; i < count; i++) {
    const d = off + i * DIRENT_SIZE
    const nidLo = img.u32(d, 'dirent', nid)
    const nidHi = img.u32(d + 4, 'dirent', nid)
    if (nidHi !== 0) fail('dirent nid out of range', nid)
    const nameoff = img.u16(d + 8, 'dirent', nid)
    let nameEnd: number
    if (i + 1 < count) {
      nameEnd = img.u16(d + DIRENT_SIZE + 8, 'dirent', nid)
    } else {
      // The last name ends at the first NUL (block padding) or at the end of the block.
      const z = nameoff < len ? img.buf.subarray(off + nameoff, off + len).indexOf(0) : -1
      nameEnd = z < 0 ? len : nameoff + z
    }
    if (nameoff < namesStart || nameoff >= len || nameEnd > len || nameEnd <= nameoff) {
      fail('bad dirent name offset', nid)
    }
    const nameLen = nameEnd - nameoff
    if (nameLen > maxNameLength) fail(`name longer than ${maxNameLength}`, nid)
    const name = img.buf.toString('latin1', off + nameoff, off + nameEnd)
    if (name.includes('\0') || name.includes('/')) fail('invalid character in a name', nid)
    out.push({name, nid: nidLo})
  }
  return out
}

/** Paths never hold NUL bytes (upstream would silently cut there; a NUL means damage). */
export function noNul(s: string, what: string, nid: number): string {
  if (s.includes('\0')) fail(`NUL byte in a ${what}`, nid)
  return s
}
