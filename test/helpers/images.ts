// Small bootable-looking images made in code for the deployment tests: a tree with a kernel,
// an initramfs, os-release and /etc files, its objects written to an objects dir.
import {mkdirSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {writeImage} from '../../src/format/erofs/writer.js'
import {FsNode, objectPath, S_IFDIR, S_IFLNK, S_IFREG} from '../../src/tree/node.js'
import {fsverityDigest} from '../../src/verity/merkle.js'

export interface TestImage {
  image: string
  objects: string
  digest: string
  /** Object paths (xx/yyyy…) of the files stored as objects. */
  objectPaths: string[]
}

export interface ImageSpec {
  /** VERSION_ID in os-release. */
  version: string
  /** Extra files: absolute path → content. Files over 64 bytes become objects. */
  files?: Record<string, string | Buffer>
  kver?: string
}

function ensureDir(root: FsNode, parts: string[]): FsNode {
  let dir = root
  for (const p of parts) {
    let next = dir.children!.get(p)
    if (!next) {
      next = new FsNode(S_IFDIR | 0o755)
      dir.addChild(p, next)
    }
    dir = next
  }
  return dir
}

/** Builds the image and writes it plus its objects under `dir`. */
export function makeImage(dir: string, spec: ImageSpec): TestImage {
  const kver = spec.kver ?? '6.12.0-test'
  const files: Record<string, string | Buffer> = {
    '/usr/lib/os-release': `NAME="cfsboot test"\nID=cfsboot-test\nVERSION_ID=${spec.version}\nPRETTY_NAME="cfsboot test ${spec.version}"\n`,
    [`/usr/lib/modules/${kver}/vmlinuz`]: `kernel ${kver} `.repeat(40),
    [`/usr/lib/modules/${kver}/initramfs.img`]: `initramfs for ${spec.version} `.repeat(40),
    '/etc/hostname': 'cfsboot\n',
    ...spec.files,
  }
  const root = new FsNode(S_IFDIR | 0o755)
  const objects = join(dir, 'objects')
  const objectPaths: string[] = []
  for (const [path, content] of Object.entries(files)) {
    const parts = path.split('/').filter(Boolean)
    const name = parts.pop()!
    const parent = ensureDir(root, parts)
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content)
    const f = new FsNode(S_IFREG | 0o644)
    f.size = data.length
    if (data.length <= 64) {
      if (data.length) f.content = data
    } else {
      const digest = fsverityDigest(data)
      f.digest = digest
      f.payload = objectPath(digest)
      objectPaths.push(f.payload)
      mkdirSync(join(objects, f.payload, '..'), {recursive: true})
      writeFileSync(join(objects, f.payload), data)
    }
    parent.addChild(name, f)
  }
  const etc = ensureDir(root, ['etc'])
  const link = new FsNode(S_IFLNK | 0o777)
  link.payload = '../usr/lib/os-release'
  etc.addChild('os-release', link)
  mkdirSync(objects, {recursive: true})
  const {image, digest} = writeImage(root)
  const imagePath = join(dir, `image-${spec.version}.cfs`)
  writeFileSync(imagePath, image)
  return {image: imagePath, objects, digest: digest.toString('hex'), objectPaths}
}
