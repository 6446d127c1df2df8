// fs-verity for `install to-disk` without the installing kernel's help ("pre-sealing"). The
// installer made the ext4 root itself (-b 4096 -O verity), so it can do what the device's kernel
// would do on `fsverity enable`, in two steps:
//
//   1. root mounted: for the image and every object, compute the Merkle tree and descriptor
//      (src/verity/tree.ts), check the digest against the file's name, and write them past the
//      data where ext4 keeps them (src/verity/ext4.ts). The data itself is not touched.
//   2. root unmounted: ONE debugfs run sets each inode's i_size back to the data size and adds
//      EXT4_VERITY_FL (src/system/debugfs.ts).
//
// The first boot then finds a sealed store: no seal-pending marker, nothing to do in the
// initramfs. Why the installer's trees need not be trusted: docs/trust.md ("Pre-sealed installs").

import {closeSync, fstatSync, openSync, readSync, writeSync} from 'node:fs'
import {relative, sep} from 'node:path'

import {CfsError, DamageError} from '../errors.js'
import {SealResult} from '../deploy/seal.js'
import {setInodeSizesAndFlags, statInodes} from '../system/debugfs.js'
import {EXT4_BLOCK_SIZE, EXT4_EXTENTS_FL, EXT4_VERITY_FL, ext4VerityTail} from '../verity/ext4.js'
import {digestHex} from '../verity/merkle.js'
import {VerityTreeBuilder} from '../verity/tree.js'

const READ_SIZE = 1024 * 1024

/** A file whose metadata is written, waiting for its inode flag (step 2). */
export interface PresealedFile {
  /** Path inside the filesystem ("/composefs/objects/ab/cd…"). */
  path: string
  dataSize: number
  /** File size after step 1: the end of the descriptor block. */
  fullSize: number
}

export interface PresealPlan {
  files: PresealedFile[]
  /** Time step 1 took (for the progress line). */
  ms: number
}

/** Step 1 for one file: tree and descriptor after its data; its digest must be `digest`. */
function writeTail(file: string, digest: string): {dataSize: number; fullSize: number} {
  const fd = openSync(file, 'r+')
  try {
    const size = fstatSync(fd).size
    const b = new VerityTreeBuilder()
    const buf = Buffer.alloc(READ_SIZE)
    for (let pos = 0; pos < size;) {
      const n = readSync(fd, buf, 0, Math.min(READ_SIZE, size - pos), pos)
      if (n === 0) throw new DamageError(`${file} got shorter while it was read`)
      b.update(buf.subarray(0, n))
      pos += n
    }
    const t = b.finish()
    const got = digestHex(t.digest)
    if (got !== digest) {
      throw new DamageError(`${file} has fs-verity digest ${got}, not the ${digest} its name says`)
    }
    const tail = ext4VerityTail(t)
    for (let off = 0; off < tail.bytes.length;) {
      off += writeSync(fd, tail.bytes, off, tail.bytes.length - off, tail.offset + off)
    }
    return {dataSize: t.dataSize, fullSize: tail.offset + tail.bytes.length}
  } finally {
    closeSync(fd)
  }
}

/**
 * Step 1 on the mounted root `mountDir`: writes the verity metadata of each file (absolute
 * paths under it, each with the digest it must have). Nothing may read these files between
 * this and step 2: until then their size includes the metadata.
 */
export function writeVerityMetadata(
  mountDir: string,
  files: {path: string; digest: string}[],
  onProgress?: (done: number, total: number) => void,
): PresealPlan {
  const t0 = Date.now()
  const out: PresealedFile[] = []
  for (const f of files) {
    const {dataSize, fullSize} = writeTail(f.path, f.digest)
    out.push({path: '/' + relative(mountDir, f.path).split(sep).join('/'), dataSize, fullSize})
    onProgress?.(out.length, files.length)
  }
  return {files: out, ms: Date.now() - t0}
}

/**
 * Step 2 on the unmounted filesystem `device`: checks that each file is what step 1 left (size,
 * extents, the descriptor block ending its allocation, as the kernel finds it), then sets its
 * data size and EXT4_VERITY_FL in one debugfs run.
 */
export async function setVerityFlags(device: string, plan: PresealPlan): Promise<SealResult> {
  const facts = await statInodes(
    device,
    plan.files.map((f) => f.path),
  )
  const updates = facts.map((st, i) => {
    const f = plan.files[i]!
    const lastBlock = f.fullSize / EXT4_BLOCK_SIZE - 1
    if (st.size !== f.fullSize || st.lastBlock !== lastBlock || !(st.flags & EXT4_EXTENTS_FL)) {
      throw new CfsError(
        'EVERITY',
        `${f.path} on ${device} is not as written (size ${st.size}, last block ${st.lastBlock}, flags 0x${st.flags.toString(16)}): cannot turn on fs-verity`,
      )
    }
    return {inode: st.inode, size: f.dataSize, flags: st.flags | EXT4_VERITY_FL}
  })
  await setInodeSizesAndFlags(device, updates)
  return {state: 'presealed', files: plan.files.length, reason: null}
}
