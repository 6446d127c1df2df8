// Synchronous, allocation-light hashing of open files: the work a pool worker does (and the main
// thread too when it lends a hand). Reads go into one reusable buffer that stays small enough to
// be hashed while it is still in the CPU cache.
import {closeSync, constants, fstatSync, openSync, readSync} from 'node:fs'

import {BLOCK_SIZE, descriptorDigest, FsVerityHasher, HASH_SIZE, LEVEL1_SPAN, sha256Latin1} from './merkle.js'

/**
 * Bytes per read(): a multiple of 512 KiB (one level-1 group). Throughput measured flat from
 * 128 KiB to 2 MiB here (~1.5 GB/s per core, read included); 512 KiB stays in a core's L2 cache.
 */
export const READ_SIZE = 512 * 1024

/** Opening never blocks (a FIFO would), and only regular files are digested. */
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK

/** A read buffer with a view per 4 KiB block made once, so the hot loop allocates nothing. */
export class BlockBuffer {
  readonly buf: Buffer
  readonly blocks: Buffer[]

  constructor(size = READ_SIZE) {
    this.buf = Buffer.alloc(size)
    this.blocks = []
    for (let off = 0; off < size; off += BLOCK_SIZE)
      this.blocks.push(this.buf.subarray(off, off + BLOCK_SIZE))
  }
}

/** An error with the errno-style code the pool carries across threads. */
export function fileError(code: string, message: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), {code})
}

/** Opens `path` for reading and returns its descriptor and size; refuses anything but a regular file. */
export function openRegular(path: string | Uint8Array): {fd: number; size: number} {
  const fd = openSync(
    typeof path === 'string' ? path : Buffer.from(path.buffer, path.byteOffset, path.length),
    OPEN_FLAGS,
  )
  try {
    const st = fstatSync(fd)
    if (!st.isFile()) throw fileError('ENOTREG', `not a regular file: ${String(path)}`)
    return {fd, size: st.size}
  } catch (err) {
    closeSync(fd)
    throw err
  }
}

/** Reads until `len` bytes are in `buf` or the file ends; returns the bytes read. */
function readFully(fd: number, buf: Buffer, len: number, pos: number): number {
  let got = 0
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, pos + got)
    if (n === 0) break
    got += n
  }
  return got
}

/**
 * A file gave fewer bytes than fstat said it had: it shrank while being read. `fsverity digest`
 * fails the same way, and the kernel's digest covers exactly the inode's size.
 */
export function shrankError(got: number, size: number): NodeJS.ErrnoException {
  return fileError('ECHANGED', `file shrank while being read (${got} of ${size} bytes)`)
}

/**
 * The fs-verity digest of the `size` bytes of an open file (fstat's size: what `fsverity digest`
 * reads, and what the kernel's digest covers; a /proc file of size 0 is empty here too). A file
 * that fits the read buffer (most files of a root filesystem) is read with one read() and hashed
 * in place, with no allocation but the result; a larger one streams through an FsVerityHasher.
 */
export function digestOpenFile(fd: number, size: number, bb: BlockBuffer): Buffer {
  if (size <= bb.buf.length) {
    const n = readFully(fd, bb.buf, size, 0)
    if (n < size) throw shrankError(n, size)
    return digestInBuffer(bb, size)
  }
  const h = new FsVerityHasher()
  for (let pos = 0; pos < size;) {
    const want = Math.min(bb.buf.length, size - pos)
    const n = readFully(fd, bb.buf, want, pos)
    if (n < want) throw shrankError(pos + n, size)
    h.update(want === bb.buf.length ? bb.buf : bb.buf.subarray(0, want))
    pos += want
  }
  return h.digest()
}

const levelBlock = Buffer.alloc(BLOCK_SIZE)
const rootScratch = Buffer.alloc(HASH_SIZE)

/** The digest of the `size` bytes at the start of `bb.buf` (at most 512 KiB, one level-1 group). */
function digestInBuffer(bb: BlockBuffer, size: number): Buffer {
  if (size === 0) return descriptorDigest(0, rootScratch.fill(0))
  const nBlocks = Math.ceil(size / BLOCK_SIZE)
  bb.buf.fill(0, size, nBlocks * BLOCK_SIZE) // the last block, zero-padded
  if (nBlocks === 1) {
    rootScratch.write(sha256Latin1(bb.blocks[0]!), 0, HASH_SIZE, 'latin1')
    return descriptorDigest(size, rootScratch)
  }
  // Up to 128 blocks: their hashes make one level-1 block, the top of the tree.
  let hashes = ''
  for (let b = 0; b < nBlocks; b++) hashes += sha256Latin1(bb.blocks[b]!)
  levelBlock.write(hashes, 0, hashes.length, 'latin1')
  levelBlock.fill(0, hashes.length)
  rootScratch.write(sha256Latin1(levelBlock), 0, HASH_SIZE, 'latin1')
  return descriptorDigest(size, rootScratch)
}

/**
 * The level-1 hashes of the bytes [start, end) of a file of `fileSize` bytes: one 32-byte hash per
 * 512 KiB (128 data blocks; the last group and the file's last block zero-padded). `start` is a
 * multiple of 512 KiB, and `end` one too unless it is the end of the file, so ranges hashed
 * separately concatenate into the file's level 1.
 */
export function level1OfRange(
  fd: number,
  start: number,
  end: number,
  fileSize: number,
  bb: BlockBuffer,
): Uint8Array {
  if (start % LEVEL1_SPAN !== 0 || (end % LEVEL1_SPAN !== 0 && end !== fileSize) || end > fileSize) {
    throw new RangeError(`bad range [${start}, ${end}) of ${fileSize} bytes`)
  }
  const out = new Uint8Array(Math.ceil((end - start) / LEVEL1_SPAN) * HASH_SIZE)
  const outBuf = Buffer.from(out.buffer, out.byteOffset, out.length)
  let outOff = 0
  const group = Buffer.alloc(BLOCK_SIZE) // the level-1 block being filled
  let hashes = '' // its hashes so far, latin1 (see sha256Latin1)
  const flushGroup = (): void => {
    group.write(hashes, 0, hashes.length, 'latin1')
    group.fill(0, hashes.length) // only the file's last group is partial
    outBuf.write(sha256Latin1(group), outOff, HASH_SIZE, 'latin1')
    outOff += HASH_SIZE
    hashes = ''
  }
  const readSize = bb.buf.length
  for (let pos = start; pos < end; pos += readSize) {
    const want = Math.min(readSize, end - pos)
    const n = readFully(fd, bb.buf, want, pos)
    if (n < want) throw shrankError(pos + n, fileSize)
    const nBlocks = Math.ceil(n / BLOCK_SIZE)
    if (n % BLOCK_SIZE !== 0) bb.buf.fill(0, n, nBlocks * BLOCK_SIZE) // the file's last block
    for (let b = 0; b < nBlocks; b++) {
      hashes += sha256Latin1(bb.blocks[b]!)
      if (hashes.length === BLOCK_SIZE) flushGroup()
    }
  }
  if (hashes.length > 0) flushGroup()
  return out
}
