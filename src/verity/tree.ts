// The whole fs-verity Merkle tree and descriptor of a file, computed in user space: what a kernel
// with fs-verity would write when `fsverity enable` runs, for an installer whose own kernel has
// none (src/install/preseal.ts). The digest alone needs no tree: merkle.ts streams without
// keeping one.
//
// Layout (fs/verity/open.c, fsverity_init_merkle_tree_params; FS_IOC_READ_VERITY_METADATA
// returns the same bytes): the levels of hash blocks one after the other, the level nearest the
// root first and level 0 (the hashes of the data blocks) last. A file of at most one block has
// no tree: its root hash is the hash of its only block (all zeros when empty).

import {hash} from 'node:crypto'

import {FsVerityHasher, fsverityDescriptor} from './merkle.js'

export interface VerityTree {
  dataSize: number
  rootHash: Buffer
  /** The Merkle tree, root-most level first (empty for a file of at most one block). */
  tree: Buffer
  /** The 256-byte fsverity_descriptor; its SHA-256 is the file's digest. */
  descriptor: Buffer
  /** The file's fs-verity digest: SHA-256 of the descriptor. */
  digest: Buffer
}

/** Collects a file's tree while it is hashed: update() with the data in any chunks, then finish(). */
export class VerityTreeBuilder {
  private readonly levels: Buffer[][] = []
  private readonly hasher = new FsVerityHasher((level, block) => {
    ;(this.levels[level] ??= []).push(Buffer.from(block))
  })

  update(chunk: Uint8Array): void {
    this.hasher.update(chunk)
  }

  finish(): VerityTree {
    const {size, rootHash} = this.hasher.finish()
    const tree = Buffer.concat(this.levels.toReversed().flat())
    const descriptor = fsverityDescriptor(size, rootHash)
    return {dataSize: size, rootHash, tree, descriptor, digest: hash('sha256', descriptor, 'buffer')}
  }
}

/** The tree and descriptor of `data` in one call. */
export function verityTreeOf(data: Uint8Array): VerityTree {
  const b = new VerityTreeBuilder()
  b.update(data)
  return b.finish()
}
