// OCI image layouts (a directory, or the same tree in a tar archive: `oci:` and `oci-archive:`)
// and Docker archives (`docker-archive:`, `docker save` / `skopeo copy` output). Archives are
// read in place: their headers are indexed once with positional reads and each blob is a byte
// range of the file, so nothing is extracted.

import {createHash} from 'node:crypto'
import {createReadStream} from 'node:fs'
import {open, readFile, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {DigestMismatchError, InvalidInputError} from '../errors.js'
import {
  checkDigest,
  diffIdsOf,
  MAX_JSON_BYTES,
  parseDescriptor,
  type BlobSource,
  type Descriptor,
} from './manifest.js'
import {indexTarFile, type TarMember} from './tar.js'

/** The OCI annotation that names an image in an index (what skopeo's oci:DIR:TAG sets). */
export const REF_NAME = 'org.opencontainers.image.ref.name'

/** Files of a layout, wherever they are kept. */
interface Files {
  read(name: string, max: number): Promise<Buffer>
  open(name: string): Promise<AsyncIterable<Buffer>>
}

const notFound = (where: string, name: string): InvalidInputError =>
  new InvalidInputError(`${where}: no ${name}`)

class DirFiles implements Files {
  constructor(private readonly dir: string) {}

  async read(name: string, max: number): Promise<Buffer> {
    const path = join(this.dir, name)
    try {
      const st = await stat(path)
      if (st.size > max) throw new InvalidInputError(`${path}: ${st.size} bytes (limit ${max})`)
      return await readFile(path)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(this.dir, name)
      throw err
    }
  }

  async open(name: string): Promise<AsyncIterable<Buffer>> {
    const path = join(this.dir, name)
    const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? notFound(this.dir, name) : err
    })
    return fh.createReadStream({highWaterMark: 256 * 1024})
  }
}

class ArchiveFiles implements Files {
  private constructor(
    private readonly path: string,
    private readonly members: Map<string, TarMember>,
  ) {}

  static async load(path: string): Promise<ArchiveFiles> {
    const fh = await open(path, 'r').catch((err: NodeJS.ErrnoException) => {
      throw err.code === 'ENOENT' ? new InvalidInputError(`${path}: no such file`) : err
    })
    try {
      const {size} = await fh.stat()
      const read = async (pos: number, len: number): Promise<Buffer> => {
        const buf = Buffer.alloc(len)
        const {bytesRead} = await fh.read(buf, 0, len, pos)
        if (bytesRead !== len) throw new InvalidInputError(`${path}: archive truncated`)
        return buf
      }
      const members = await indexTarFile(read, size)
      return new ArchiveFiles(path, new Map(members.map((m) => [m.name, m])))
    } finally {
      await fh.close()
    }
  }

  private member(name: string): TarMember {
    const m = this.members.get(name)
    if (!m) throw notFound(this.path, name)
    return m
  }

  async read(name: string, max: number): Promise<Buffer> {
    const m = this.member(name)
    if (m.size > max) throw new InvalidInputError(`${this.path}: ${name} is ${m.size} bytes (limit ${max})`)
    const fh = await open(this.path, 'r')
    try {
      const buf = Buffer.alloc(m.size)
      await fh.read(buf, 0, m.size, m.offset)
      return buf
    } finally {
      await fh.close()
    }
  }

  async open(name: string): Promise<AsyncIterable<Buffer>> {
    const m = this.member(name)
    if (m.size === 0) return (async function* () {})()
    return createReadStream(this.path, {
      start: m.offset,
      end: m.offset + m.size - 1,
      highWaterMark: 256 * 1024,
    })
  }
}

const blobName = (d: Descriptor): string => `blobs/sha256/${checkDigest(d.digest, 'blob').slice(7)}`

/** An OCI image layout; `tag` picks a manifest of its index.json by ref name. */
export class OciLayout implements BlobSource {
  private constructor(
    private readonly files: Files,
    private readonly where: string,
    private readonly tag: string | null,
  ) {}

  static dir(dir: string, tag: string | null): OciLayout {
    return new OciLayout(new DirFiles(dir), dir, tag)
  }

  static async archive(file: string, tag: string | null): Promise<OciLayout> {
    return new OciLayout(await ArchiveFiles.load(file), file, tag)
  }

  async root(): Promise<Descriptor> {
    let index: {manifests?: unknown}
    try {
      index = JSON.parse(
        (await this.files.read('index.json', MAX_JSON_BYTES)).toString('utf8'),
      ) as typeof index
    } catch (err) {
      if (err instanceof InvalidInputError)
        throw new InvalidInputError(`${this.where}: not an OCI image layout (${err.message})`)
      throw new InvalidInputError(`${this.where}: index.json is not valid JSON`)
    }
    const list = (Array.isArray(index.manifests) ? index.manifests : []).map((m, i) =>
      parseDescriptor(m, `${this.where} index.json manifests[${i}]`),
    )
    if (this.tag !== null) {
      const hit = list.find((m) => m.annotations?.[REF_NAME] === this.tag)
      if (!hit) throw new InvalidInputError(`${this.where}: no image tagged "${this.tag}"`)
      return hit
    }
    if (list.length !== 1) {
      const names = list.map((m) => m.annotations?.[REF_NAME] ?? m.digest).join(', ')
      throw new InvalidInputError(
        `${this.where}: ${list.length} images (${names || 'none'}); name one with :TAG`,
      )
    }
    return list[0]!
  }

  blob(desc: Descriptor, max: number): Promise<Buffer> {
    return this.files.read(blobName(desc), max)
  }

  open(desc: Descriptor): Promise<AsyncIterable<Buffer>> {
    return this.files.open(blobName(desc))
  }
}

/** What a docker archive lists for one image (manifest.json). */
interface DockerEntry {
  Config: string
  RepoTags?: string[] | null
  Layers: string[]
}

export interface ArchiveLayer {
  /** The blob digest when the archive names it (blobs/sha256/…), else null: only the diff ID is known. */
  digest: string | null
  diffId: string
  open(): Promise<AsyncIterable<Buffer>>
}

const hexName = /(?:^|\/)(?:blobs\/sha256\/)?([0-9a-f]{64})(?:\.json|\.tar)?$/

/** A docker archive's image: its config (digest-checked when its name is a digest) and layers. */
export async function dockerArchiveImage(
  file: string,
  ref: string | null,
): Promise<{id: string; layers: ArchiveLayer[]}> {
  const files = await ArchiveFiles.load(file)
  let list: DockerEntry[]
  try {
    list = JSON.parse((await files.read('manifest.json', MAX_JSON_BYTES)).toString('utf8')) as DockerEntry[]
  } catch (err) {
    if (err instanceof InvalidInputError)
      throw new InvalidInputError(`${file}: not a docker archive (${err.message})`)
    throw new InvalidInputError(`${file}: manifest.json is not valid JSON`)
  }
  if (!Array.isArray(list)) throw new InvalidInputError(`${file}: manifest.json is not a list`)
  const want = ref === null ? null : ref.includes(':') ? ref : `${ref}:latest`
  const hits = want === null ? list : list.filter((e) => e.RepoTags?.includes(want))
  if (hits.length !== 1)
    throw new InvalidInputError(
      `${file}: ${hits.length} images${want ? ` tagged ${want}` : ''}; name one with :REPO:TAG`,
    )
  const e = hits[0]!
  if (typeof e.Config !== 'string' || !Array.isArray(e.Layers))
    throw new InvalidInputError(`${file}: bad manifest.json`)
  const configBytes = await files.read(e.Config, MAX_JSON_BYTES)
  const configHex = hexName.exec(e.Config)?.[1]
  const got = createHash('sha256').update(configBytes).digest('hex')
  if (configHex && configHex !== got)
    throw new DigestMismatchError(`${file}: ${e.Config} has digest sha256:${got}`)
  let config: Record<string, unknown>
  try {
    config = JSON.parse(configBytes.toString('utf8')) as Record<string, unknown>
  } catch {
    throw new InvalidInputError(`${file}: ${e.Config} is not valid JSON`)
  }
  const diffIds = diffIdsOf(config, `${file} ${e.Config}`)
  if (diffIds.length !== e.Layers.length)
    throw new InvalidInputError(`${file}: ${e.Layers.length} layers but ${diffIds.length} diff IDs`)
  return {
    id: `sha256:${got}`,
    layers: e.Layers.map((name, i) => {
      const hex = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(name)?.[1]
      return {digest: hex ? `sha256:${hex}` : null, diffId: diffIds[i]!, open: () => files.open(name)}
    }),
  }
}
