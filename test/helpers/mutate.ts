// Deterministic mutations of valid composefs images for the reader's fuzz test. Each mutation
// comes with a description precise enough to rebuild the bytes in a regression test.
import {allDirectories, direntsOf} from './erofs-walk.js'

/** mulberry32: a small, fast, seedable PRNG (the same sequence on every run). */
export function prng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export interface Seed {
  name: string
  image: Buffer
  /** Offsets of dirent records and the nid of the directory holding each. */
  dirents: {offset: number; dirNid: number}[]
  /** Every nid some dirent points to. */
  nids: number[]
  /** End of the inode/xattr area (mutations favour it: that is where the structure is). */
  metaEnd: number
}

export function makeSeed(name: string, image: Buffer): Seed {
  const dirents: {offset: number; dirNid: number}[] = []
  const nids = new Set<number>()
  for (const dirNid of allDirectories(image)) {
    for (const d of direntsOf(image, dirNid)) {
      dirents.push({offset: d.offset, dirNid})
      nids.add(d.nid)
    }
  }
  // The superblock's block count minus data blocks is not recorded; the first directory data
  // block or the end of the image bounds the metadata closely enough.
  const metaEnd = Math.min(image.length, Math.max(...dirents.map((d) => d.offset)) + 4096)
  return {name, image, dirents, nids: [...nids], metaEnd}
}

const HUGE_U32 = [0xffffffff, 0x80000000, 0x7fffffff, 0x10000, 0xfffe, 0x1000, 36, 1]

export interface Mutation {
  bytes: Buffer
  description: string
}

/** One to three random edits of the seed image. */
export function mutate(seed: Seed, rnd: () => number): Mutation {
  const int = (n: number): number => Math.floor(rnd() * n)
  let bytes = Buffer.from(seed.image)
  const edits: string[] = []
  const nEdits = 1 + int(3)
  for (let e = 0; e < nEdits; e++) {
    // Most edits hit the metadata (header, superblock, inodes, xattrs, inline dirents).
    const region = rnd() < 0.85 ? Math.min(seed.metaEnd, bytes.length) : bytes.length
    const pos = int(region)
    const kind = int(9)
    switch (kind) {
      case 0: {
        const bit = int(8)
        bytes[pos] = bytes[pos]! ^ (1 << bit)
        edits.push(`flip bit ${bit} at ${pos}`)
        break
      }
      case 1:
        bytes[pos] = 0
        edits.push(`set ${pos} to 0x00`)
        break
      case 2:
        bytes[pos] = 0xff
        edits.push(`set ${pos} to 0xff`)
        break
      case 3: {
        const v = int(256)
        bytes[pos] = v
        edits.push(`set ${pos} to ${v}`)
        break
      }
      case 4: {
        const len = int(bytes.length)
        bytes = bytes.subarray(0, len)
        edits.push(`truncate to ${len}`)
        break
      }
      case 5: {
        const at = pos & ~1
        if (at + 4 > bytes.length) break
        const v = HUGE_U32[int(HUGE_U32.length)]!
        bytes.writeUInt32LE(v, at)
        edits.push(`u32 at ${at} = ${v}`)
        break
      }
      case 6:
      case 7: {
        // A dirent pointing to its own directory, or to any other inode.
        const d = seed.dirents[int(seed.dirents.length)]
        if (!d || d.offset + 4 > bytes.length) break
        const nid = kind === 6 ? d.dirNid : seed.nids[int(seed.nids.length)]!
        bytes.writeUInt32LE(nid, d.offset)
        edits.push(`dirent at ${d.offset} -> nid ${nid}`)
        break
      }
      case 8: {
        const at = pos & ~1
        if (at + 2 > bytes.length) break
        const v = int(0x10000)
        bytes.writeUInt16LE(v, at)
        edits.push(`u16 at ${at} = ${v}`)
        break
      }
    }
  }
  return {bytes, description: `${seed.name}: ${edits.join(', ') || 'no change'}`}
}
