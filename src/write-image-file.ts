// The last step of every build: the tree → an EROFS image written to OUTPUT atomically
// (temporary name, fsync, rename), shared by buildImage and the early `build` of a tree or a
// dump (cli/early.ts), which must not load the rest of build.ts.
//
// The image goes to the file as it is made, a window at a time, and its fs-verity digest is
// computed from the same pieces: a whole image in memory was the largest single allocation of a
// build (7 MiB for the 32k-entry Debian tree, ~200 MiB for a million entries).

import {writeSync} from 'node:fs'

import {streamImage} from './format/erofs/writer.js'
import type {FsNode} from './tree/node.js'
import {writeFileAtomicWith} from './util/fs.js'
import {FsVerityHasher} from './verity/merkle.js'

export interface WrittenImageFile {
  /** fs-verity digest of the image, hex. */
  digest: string
  image: string
  imageBytes: number
  formatVersion: number
  inodes: number
}

export async function writeImageFile(
  root: FsNode,
  output: string,
  versions: {minVersion?: number; maxVersion?: number} = {},
): Promise<WrittenImageFile> {
  const hasher = new FsVerityHasher()
  const written = await writeFileAtomicWith(output, async (fh) =>
    streamImage(root, versions, (bytes) => {
      // Synchronous: the writer reuses its window as soon as this returns.
      for (let off = 0; off < bytes.length;) off += writeSync(fh.fd, bytes, off, bytes.length - off)
      hasher.update(bytes)
    }),
  )
  return {
    digest: hasher.digest().toString('hex'),
    image: output,
    imageBytes: written.size,
    formatVersion: written.version,
    inodes: written.inodes,
  }
}
