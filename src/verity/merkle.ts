// The fs-verity file digest (SHA-256, 4096-byte Merkle blocks, no salt) computed in user space:
// the same number `fsverity digest` prints and the kernel enforces once fs-verity is enabled.
//
// The Merkle tree: the file's data is cut into 4096-byte blocks (the last one zero-padded) and
// each block is hashed; those hashes are packed 128 to a 4096-byte block (the last block of a
// level zero-padded), and each such block is hashed in turn, level after level, until a level
// holds a single block. The root hash is the hash of that block; for an empty file it is all
// zeros. The digest is SHA-256 of a 256-byte descriptor holding the file size and the root hash.
//
// Everything here streams: a level keeps only its one partially filled block, so a hasher needs
// a few KiB whatever the file size.
import {hash} from 'node:crypto'

export const BLOCK_SIZE = 4096
export const LOG_BLOCK_SIZE = 12
export const HASH_SIZE = 32
export const HASHES_PER_BLOCK = BLOCK_SIZE / HASH_SIZE
/** Data bytes covered by one hash of level 1 (one full block of data-block hashes): 512 KiB. */
export const LEVEL1_SPAN = BLOCK_SIZE * HASHES_PER_BLOCK
export const DIGEST_SIZE = 32

const DESCRIPTOR_SIZE = 256
const FS_VERITY_VERSION = 1
const FS_VERITY_HASH_ALG_SHA256 = 1
const ZERO_HASH = Buffer.alloc(HASH_SIZE)
/** Reused: only the size and root fields change, and the root's upper 32 bytes stay zero. */
const descriptor = Buffer.alloc(DESCRIPTOR_SIZE)

/**
 * SHA-256 of `data` as a 32-character latin1 ("binary") string, one character per byte.
 *
 * crypto.hash() with a string result is the fastest way node:crypto offers to hash many small
 * buffers: measured here, a 'buffer' result (a new backing store per call) is ~20% slower and a
 * createHash() object per block ~30% slower. Callers gather the strings of a whole block of
 * hashes and write them into a Buffer at once (latin1 maps characters back to the same bytes),
 * a few % faster again than one write per hash.
 */
export function sha256Latin1(data: Uint8Array): string {
  return hash('sha256', data, 'binary')
}

/**
 * Packs block hashes of one tree level into blocks and hashes those into the level above,
 * recursively; finish() returns the root hash. Feeding it the hashes of the data blocks gives the
 * root of the whole file; feeding it level-1 hashes (one per 512 KiB of data, as the worker pool
 * does) gives the same root for files of more than 128 blocks.
 */
export class MerkleLevels {
  /**
   * `onBlock`, when given, sees every finished hash block of this level and the levels above
   * (level 0: the block of data-block hashes; the block is reused afterwards: copy it to keep
   * it). That is the whole Merkle tree as fs-verity stores it, for writing the tree oneself
   * (src/verity/tree.ts); without it, nothing is kept.
   */
  constructor(
    private readonly onBlock?: (level: number, block: Buffer) => void,
    private readonly level = 0,
  ) {}

  private readonly block = Buffer.alloc(BLOCK_SIZE)
  /** Bytes of `block` in use, not counting `pending`. */
  private fill = 0
  /** Hashes added by addHashOf() and not yet copied into `block` (latin1). */
  private pending = ''
  private count = 0
  private parent: MerkleLevels | undefined

  /** Adds the next hash of this level (32 bytes of `src` at `offset`). */
  add(src: Uint8Array, offset = 0): void {
    this.flushPending()
    this.block.set(src.subarray(offset, offset + HASH_SIZE), this.fill)
    this.fill += HASH_SIZE
    this.count++
    if (this.fill === BLOCK_SIZE) this.pushBlock()
  }

  /** Adds the SHA-256 of `data` as the next hash of this level. */
  addHashOf(data: Uint8Array): void {
    this.pending += sha256Latin1(data)
    this.count++
    if (this.fill + this.pending.length === BLOCK_SIZE) {
      this.flushPending()
      this.pushBlock()
    }
  }

  /** Adds every 32-byte hash held in `hashes` (its length a multiple of 32). */
  addMany(hashes: Uint8Array): void {
    for (let off = 0; off < hashes.length; off += HASH_SIZE) this.add(hashes, off)
  }

  /** The number of hashes added so far. */
  get length(): number {
    return this.count
  }

  private flushPending(): void {
    if (this.pending.length === 0) return
    this.block.write(this.pending, this.fill, this.pending.length, 'latin1')
    this.fill += this.pending.length
    this.pending = ''
  }

  /** The block is full: its hash goes to the level above. */
  private pushBlock(): void {
    this.parent ??= new MerkleLevels(this.onBlock, this.level + 1)
    this.onBlock?.(this.level, this.block)
    this.parent.addHashOf(this.block)
    this.fill = 0
  }

  /**
   * The root hash: all zeros when nothing was added, the one hash when a single one was added
   * (that block is the top of the tree), else the root of the level above after this level's
   * partial block, zero-padded, has been hashed into it.
   */
  finish(): Buffer {
    this.flushPending()
    if (this.count === 0) return Buffer.from(ZERO_HASH)
    if (this.count === 1) return Buffer.from(this.block.subarray(0, HASH_SIZE))
    if (this.fill > 0) {
      this.block.fill(0, this.fill)
      this.pushBlock()
    }
    return this.parent!.finish()
  }
}

/** The fs-verity digest of a file of `dataSize` bytes whose Merkle root hash is `rootHash`. */
export function descriptorDigest(dataSize: number, rootHash: Uint8Array): Buffer {
  return hash('sha256', fillDescriptor(descriptor, dataSize, rootHash), 'buffer')
}

/**
 * The 256-byte `struct fsverity_descriptor` (include/uapi/linux/fsverity.h) of a file of
 * `dataSize` bytes whose Merkle root hash is `rootHash`: the bytes whose SHA-256 is the digest,
 * and what a filesystem stores beside the tree.
 */
export function fsverityDescriptor(dataSize: number, rootHash: Uint8Array): Buffer {
  return fillDescriptor(Buffer.alloc(DESCRIPTOR_SIZE), dataSize, rootHash)
}

function fillDescriptor(d: Buffer, dataSize: number, rootHash: Uint8Array): Buffer {
  d[0] = FS_VERITY_VERSION
  d[1] = FS_VERITY_HASH_ALG_SHA256
  d[2] = LOG_BLOCK_SIZE
  d[3] = 0 // salt size; bytes 4..7 are reserved
  d.writeUInt32LE(dataSize >>> 0, 8) // data_size, u64 little-endian
  d.writeUInt32LE(Math.floor(dataSize / 0x100000000), 12)
  d.set(rootHash.subarray(0, HASH_SIZE), 16) // a 64-byte field: the rest stays zero
  // salt (32 bytes) and the reserved tail (144 bytes) stay zero
  return d
}

/**
 * A streaming fs-verity digest: update() with the file's bytes in any chunk sizes, then
 * digest(). Memory is constant: one partial data block plus one partial block per tree level.
 */
export class FsVerityHasher {
  private readonly partial = Buffer.alloc(BLOCK_SIZE)
  private partialFill = 0
  private size = 0
  private readonly level1: MerkleLevels
  private done = false

  /** `onTreeBlock`: see MerkleLevels (every hash block of the tree, level 0 first). */
  constructor(onTreeBlock?: (level: number, block: Buffer) => void) {
    this.level1 = new MerkleLevels(onTreeBlock)
  }

  update(chunk: Uint8Array): void {
    if (this.done) throw new Error('FsVerityHasher: update() after digest()')
    this.size += chunk.length
    let off = 0
    if (this.partialFill > 0) {
      const take = Math.min(BLOCK_SIZE - this.partialFill, chunk.length)
      this.partial.set(chunk.subarray(0, take), this.partialFill)
      this.partialFill += take
      off = take
      if (this.partialFill < BLOCK_SIZE) return
      this.level1.addHashOf(this.partial)
      this.partialFill = 0
    }
    // Whole blocks are hashed straight from the caller's chunk.
    const end = chunk.length - ((chunk.length - off) % BLOCK_SIZE)
    for (; off < end; off += BLOCK_SIZE) this.level1.addHashOf(chunk.subarray(off, off + BLOCK_SIZE))
    if (off < chunk.length) {
      this.partial.set(chunk.subarray(off), 0)
      this.partialFill = chunk.length - off
    }
  }

  /** The 32-byte digest. The hasher cannot be updated afterwards. */
  digest(): Buffer {
    return descriptorDigest(this.size, this.root())
  }

  /** The data size and Merkle root hash (what the descriptor holds). Ends the hasher as digest() does. */
  finish(): {size: number; rootHash: Buffer} {
    return {size: this.size, rootHash: this.root()}
  }

  private root(): Buffer {
    if (this.done) throw new Error('FsVerityHasher: finished twice')
    this.done = true
    if (this.partialFill > 0) {
      this.partial.fill(0, this.partialFill)
      this.level1.addHashOf(this.partial)
    }
    return this.level1.finish()
  }
}

/** The fs-verity digest of `data` (one call; same result as FsVerityHasher). */
export function fsverityDigest(data: Uint8Array): Buffer {
  const h = new FsVerityHasher()
  h.update(data)
  return h.digest()
}

/** Lower-case hex, as `fsverity digest` prints it after "sha256:". */
export function digestHex(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.length).toString('hex')
}
