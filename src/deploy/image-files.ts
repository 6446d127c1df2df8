// Reading files out of an image: the kernel, the initramfs and os-release a deployment needs.
// A file's bytes are inline in the image or in an object, which may still be in the source
// objects dir (during deploy) or already in the store.

import {access, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {parseOsRelease} from '../boot/uki.js'
import {DamageError, InvalidInputError} from '../errors.js'
import {cmpBytes, FsNode} from '../tree/node.js'
import {lookupPath} from '../tree/lookup.js'

export const MODULES_DIR = '/usr/lib/modules'

/** The object dirs to look in, in order. */
export async function readImageFile(node: FsNode, objectDirs: string[]): Promise<Buffer> {
  if (node.content) return node.content
  if (node.size === 0) return Buffer.alloc(0)
  if (!node.payload) throw new InvalidInputError('image: a file has neither content nor an object')
  for (const dir of objectDirs) {
    const p = join(dir, node.payload)
    try {
      await access(p)
    } catch {
      continue
    }
    return readFile(p)
  }
  throw new DamageError(`object ${node.payload} is missing`)
}

/** The kernel to boot: the newest /usr/lib/modules/KVER that has both vmlinuz and initramfs.img. */
export function findKernel(root: FsNode): {version: string; vmlinuz: FsNode; initramfs: FsNode} {
  const modules = lookupPath(root, MODULES_DIR)
  const candidates: {version: string; vmlinuz: FsNode; initramfs: FsNode}[] = []
  for (const [kver, dir] of modules?.isDir() ? modules.children! : []) {
    const vmlinuz = lookupPath(root, `${MODULES_DIR}/${kver}/vmlinuz`)
    const initramfs = lookupPath(root, `${MODULES_DIR}/${kver}/initramfs.img`)
    if (dir.target().isDir() && vmlinuz?.isReg() && initramfs?.isReg())
      candidates.push({version: kver, vmlinuz, initramfs})
  }
  if (candidates.length === 0) {
    throw new InvalidInputError(`image has no kernel: expected ${MODULES_DIR}/KVER/vmlinuz and initramfs.img`)
  }
  candidates.sort((a, b) => cmpBytes(a.version, b.version))
  return candidates[candidates.length - 1]!
}

/** os-release as key/value pairs (/etc/os-release, else /usr/lib/os-release); empty if absent. */
export async function readOsRelease(root: FsNode, objectDirs: string[]): Promise<Record<string, string>> {
  const node = lookupPath(root, '/etc/os-release') ?? lookupPath(root, '/usr/lib/os-release')
  if (!node?.isReg() || node.size > 64 * 1024) return {}
  return parseOsRelease((await readImageFile(node, objectDirs)).toString('utf8'))
}
