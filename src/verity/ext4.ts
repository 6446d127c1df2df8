// Where ext4 keeps a file's fs-verity metadata (fs/ext4/verity.c), as bytes to write past the
// end of the file's data. A kernel without fs-verity can write them (they are ordinary file
// bytes until the inode's flag is set); debugfs then sets i_size back to the data size and adds
// EXT4_VERITY_FL (src/system/debugfs.ts).
//
//   0 … i_size                      the data
//   … round_up(i_size, 64 KiB)      a hole (need not be allocated)
//   tree                            the Merkle tree, root-most level first (tree.ts)
//   next block boundary             the fsverity_descriptor, zero-padded to the block's end,
//                                   whose last 4 bytes hold the descriptor's size (__le32)
//
// The kernel finds the descriptor from the file's LAST EXTENT: the size is "in the last 4 bytes
// of the last allocated block" (ext4_get_verity_descriptor_location). So the descriptor block
// must end the file's allocation; writing this tail with ordinary writes on a file with no
// blocks past its data does that. The file must use extents (EXT4_EXTENTS_FL), as every file
// ext4 creates does.

import {BLOCK_SIZE} from './merkle.js'
import {VerityTree} from './tree.js'

/** i_flags bit of a file with fs-verity (EXT4_VERITY_FL). */
export const EXT4_VERITY_FL = 0x00100000
/** i_flags bit of a file mapped by an extent tree (EXT4_EXTENTS_FL). */
export const EXT4_EXTENTS_FL = 0x00080000
/** The metadata starts at the first multiple of this at or after i_size (ext4_verity_metadata_pos). */
export const EXT4_VERITY_METADATA_ALIGN = 65536
/** Only 4096-byte filesystem blocks (mkfs.ext4 -b 4096), the same as the Merkle block size. */
export const EXT4_BLOCK_SIZE = BLOCK_SIZE

export interface Ext4VerityTail {
  /** File offset of the first byte of `bytes`. */
  offset: number
  /** The tree, then the descriptor block: written at `offset`, they end the file. */
  bytes: Buffer
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to
}

/** The bytes ext4 stores past a file's data for `t`, and where they start. */
export function ext4VerityTail(t: VerityTree): Ext4VerityTail {
  const offset = roundUp(t.dataSize, EXT4_VERITY_METADATA_ALIGN)
  // tree.length is a multiple of the block size, so the descriptor starts right after it; a
  // 256-byte descriptor and its 4-byte size fit in one block (the kernel would use a second
  // block only for a descriptor with a large signature, which cfsboot never writes).
  const descBlock = Buffer.alloc(roundUp(t.descriptor.length + 4, EXT4_BLOCK_SIZE))
  t.descriptor.copy(descBlock, 0)
  descBlock.writeUInt32LE(t.descriptor.length, descBlock.length - 4)
  return {offset, bytes: Buffer.concat([t.tree, descBlock])}
}
