// The last step of every build: the tree → an EROFS image written to OUTPUT atomically
// (temporary name, fsync, rename), shared by buildImage and the early `build` of a tree or a
// dump (cli/early.ts), which must not load the rest of build.ts.

import {writeImage} from './format/erofs/writer.js'
import type {FsNode} from './tree/node.js'
import {writeFileAtomic} from './util/fs.js'

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
  const written = writeImage(root, versions)
  await writeFileAtomic(output, written.image)
  return {
    digest: written.digest.toString('hex'),
    image: output,
    imageBytes: written.image.length,
    formatVersion: written.version,
    inodes: written.inodes,
  }
}
