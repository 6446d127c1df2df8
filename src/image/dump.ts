// `image dump`: an image file's composefs-dump text, printed straight from its bytes
// (src/format/dump/image.ts). Apart from load.ts, so that the dump loads neither the tree
// reader nor the fs-verity hashing it does not use.

import {checkedImageDump} from '../format/dump/image.js'
import {loadImageFile} from './image-file.js'

/**
 * Reads and checks the image, then returns the function that prints its composefs-dump text
 * exactly as upstream's `composefs-info dump` does, through `drain` a buffer at a time (see
 * checkedImageDump for whose the buffer is). A broken
 * image throws here, before anything is printed.
 */
export async function imageDump(path: string): Promise<(drain: (bytes: Buffer) => unknown) => void> {
  return checkedImageDump(await loadImageFile(path))
}
