// An inode's data in a composefs image: where its blocks and inline tail are (DataLocator),
// and directory blocks decoded into entries. All reads are bounds-checked through ImageBuffer.

import {fail, type ImageBuffer} from './image-header.js'
import {BLOCK_SIZE, DIRENT_SIZE, Layout} from './layout.js'

/**
 * Where the `size` bytes of an inode's data start when they lie in one piece (one block, or an
 * inline tail), bounds-checked; -1 when they are empty or in several pieces (DataLocator).
 * Without an object per inode: most symlinks and all small directories are one piece.
 */
export function onePiece(
  img: ImageBuffer,
  nid: number,
  size: number,
  layout: number,
  dataOff: number,
  tailOff: number,
  what: string,
): number {
  if (size === 0 || size > BLOCK_SIZE) return -1
  if (layout === Layout.flatInline) {
    checkTail(img, nid, tailOff, size, what)
    return tailOff
  }
  // (need is called only to fail: its message is built only then.)
  if (!img.holds(dataOff, size)) img.need(dataOff, size, `${what} data blocks`, nid)
  return dataOff
}

/** Checks an inline tail: in the image, and (as the kernel requires) within the inode's block. */
function checkTail(img: ImageBuffer, nid: number, tailOff: number, tail: number, what: string): void {
  if (!img.holds(tailOff, tail)) img.need(tailOff, tail, `${what} inline data`, nid)
  if (Math.floor(tailOff / BLOCK_SIZE) !== Math.floor((tailOff + tail - 1) / BLOCK_SIZE)) {
    fail(`${what} inline data crosses a block boundary`, nid)
  }
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
    const one = onePiece(img, nid, size, this.layout, this.dataOff, this.tailOff, what)
    if (one >= 0) return [[one, size]]
    const nBlocks = Math.ceil(size / BLOCK_SIZE)
    const inline = this.layout === Layout.flatInline
    const fullBlocks = inline ? nBlocks - 1 : nBlocks
    const inBlocks = inline ? fullBlocks * BLOCK_SIZE : size
    if (inBlocks > 0 && !img.holds(this.dataOff, inBlocks))
      img.need(this.dataOff, inBlocks, `${what} data blocks`, nid)
    const pieces: [number, number][] = []
    for (let b = 0; b < fullBlocks; b++) {
      pieces.push([this.dataOff + b * BLOCK_SIZE, Math.min(BLOCK_SIZE, size - b * BLOCK_SIZE)])
    }
    if (inline) {
      const tail = size - fullBlocks * BLOCK_SIZE
      checkTail(img, nid, this.tailOff, tail, what)
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
  const blocks = data.blocks('directory')
  // (Indexed: a for-of makes an iterator and a destructured pair per block until compiled.)
  for (let b = 0; b < blocks.length; b++) {
    const first = entries.length
    readDirBlock(img, nid, blocks[b]![0], blocks[b]![1], maxNameLength, entries)
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
  const {dv, bytes} = img
  let namesFrom = 0
  let namesTo = 0
  for (let i = 0; i < count; i++) {
    const d = off + i * DIRENT_SIZE
    const nidLo = dv.getUint32(d, true)
    if (dv.getUint32(d + 4, true) !== 0) fail('dirent nid out of range', nid)
    const nameoff = buf[d + 8]! | (buf[d + 9]! << 8)
    let nameEnd: number
    if (i + 1 < count) {
      nameEnd = buf[d + DIRENT_SIZE + 8]! | (buf[d + DIRENT_SIZE + 9]! << 8)
    } else {
      // The last name ends at the first NUL (block padding) or at the end of the block.
      const z = nameoff < len ? bytes.subarray(off + nameoff, off + len).indexOf(NUL) : -1
      nameEnd = z < 0 ? len : nameoff + z
    }
    if (nameoff < namesStart || nameoff >= len || nameEnd > len || nameEnd <= nameoff) {
      fail('bad dirent name offset', nid)
    }
    const nameLen = nameEnd - nameoff
    if (nameLen > maxNameLength) fail(`name longer than ${maxNameLength}`, nid)
    if (i === 0) namesFrom = off + nameoff
    namesTo = off + nameEnd
    out.push(off + nameoff, off + nameEnd, nidLo)
  }
  // Each name ends where the next begins, so the names are one run of bytes: checked at once
  // (two builtin scans per block, instead of a loop per byte of every name).
  const names = bytes.subarray(namesFrom, namesTo)
  if (names.indexOf(NUL) >= 0 || names.indexOf(SLASH) >= 0) fail('invalid character in a name', nid)
}
