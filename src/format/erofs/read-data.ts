// An inode's data in a composefs image: where its blocks and inline tail are (DataLocator),
// and directory blocks decoded into entries. All reads are bounds-checked through ImageBuffer.

import {fail, type ImageBuffer} from './image-header.js'
import {BLOCK_SIZE, DIRENT_SIZE, Layout} from './layout.js'

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
    // (need is called only to fail: its message is built only then.)
    if (inBlocks > 0 && !img.holds(this.dataOff, inBlocks))
      img.need(this.dataOff, inBlocks, `${what} data blocks`, nid)
    const pieces: [number, number][] = []
    for (let b = 0; b < fullBlocks; b++) {
      pieces.push([this.dataOff + b * BLOCK_SIZE, Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE)])
    }
    if (inline) {
      const tail = size - fullBlocks * BLOCK_SIZE
      if (!img.holds(this.tailOff, tail)) img.need(this.tailOff, tail, `${what} inline data`, nid)
      // The kernel requires the inline tail to stay in the inode's block.
      if (Math.floor(this.tailOff / BLOCK_SIZE) !== Math.floor((this.tailOff + tail - 1) / BLOCK_SIZE)) {
        fail(`${what} inline data crosses a block boundary`, nid)
      }
      pieces.push([this.tailOff, tail])
    }
    return pieces
  }

  /** The data as one buffer: a view of the image when it is in one piece, else a copy (callers cap `size` first). */
  view(what: string): Buffer {
    const pieces = this.blocks(what)
    const buf = this.img.buf
    if (pieces.length === 1) return buf.subarray(pieces[0]![0], pieces[0]![0] + pieces[0]![1])
    return Buffer.concat(pieces.map(([off, len]) => buf.subarray(off, off + len)))
  }
}

/**
 * The entries of a directory as flat (nameStart, nameEnd, nid) triples, names being byte ranges
 * of the image; checked to be in strictly increasing byte order.
 */
export function readDirectory(
  img: ImageBuffer,
  nid: number,
  data: DataLocator,
  maxNameLength: number,
): number[] {
  const entries: number[] = []
  for (const [blockOff, blockLen] of data.blocks('directory')) {
    const first = entries.length
    readDirBlock(img, nid, blockOff, blockLen, maxNameLength, entries)
    // Within a block and across blocks: each name after the one before it.
    for (let i = Math.max(first, 3); i < entries.length; i += 3) {
      if (!before(img.buf, entries[i - 3]!, entries[i - 2]!, entries[i]!, entries[i + 1]!)) {
        fail('directory entries out of order', nid)
      }
    }
  }
  return entries
}

/** Whether name buf[a, aEnd) sorts strictly before buf[b, bEnd) in byte (strcmp) order. */
function before(buf: Buffer, a: number, aEnd: number, b: number, bEnd: number): boolean {
  for (; a < aEnd && b < bEnd; a++, b++) if (buf[a] !== buf[b]) return buf[a]! < buf[b]!
  return aEnd - a < bEnd - b
}

const NUL = 0
const SLASH = 0x2f

function readDirBlock(
  img: ImageBuffer,
  nid: number,
  off: number,
  len: number,
  maxNameLength: number,
  out: number[],
): void {
  img.need(off, len, 'directory block', nid)
  if (len < DIRENT_SIZE) fail('directory block too small', nid)
  // The dirents, and the names they point to, lie in the block just checked.
  const buf = img.buf
  const namesStart = buf[off + 8]! | (buf[off + 9]! << 8)
  if (namesStart === 0 || namesStart % DIRENT_SIZE !== 0 || namesStart > len) {
    fail('bad dirent count', nid)
  }
  const count = namesStart / DIRENT_SIZE
  for (let i = 0; i < count; i++) {
    const d = off + i * DIRENT_SIZE
    const nidLo = buf.readUInt32LE(d)
    if (buf.readUInt32LE(d + 4) !== 0) fail('dirent nid out of range', nid)
    const nameoff = buf[d + 8]! | (buf[d + 9]! << 8)
    let nameEnd: number
    if (i + 1 < count) {
      nameEnd = buf[d + DIRENT_SIZE + 8]! | (buf[d + DIRENT_SIZE + 9]! << 8)
    } else {
      // The last name ends at the first NUL (block padding) or at the end of the block.
      const z = nameoff < len ? buf.subarray(off + nameoff, off + len).indexOf(NUL) : -1
      nameEnd = z < 0 ? len : nameoff + z
    }
    if (nameoff < namesStart || nameoff >= len || nameEnd > len || nameEnd <= nameoff) {
      fail('bad dirent name offset', nid)
    }
    const nameLen = nameEnd - nameoff
    if (nameLen > maxNameLength) fail(`name longer than ${maxNameLength}`, nid)
    for (let j = off + nameoff; j < off + nameEnd; j++) {
      if (buf[j] === NUL || buf[j] === SLASH) fail('invalid character in a name', nid)
    }
    out.push(off + nameoff, off + nameEnd, nidLo)
  }
}
