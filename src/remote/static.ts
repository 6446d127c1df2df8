// The static repository: a directory any HTTP server (nginx, a CDN, S3) can serve as it is.
//
//   REPO/
//     releases/<channel>.json   the signed release index (src/remote/index.ts); replaced last,
//                               by one rename, so a device sees the old release or the new one
//     images/<fs-verity hex>    composefs images
//     objects/ab/cdef…          objects by fs-verity digest, the store's own layout
//
// Publishing writes each file under a temporary name and renames it; an object already there is
// not written again, so re-publishing an update copies only the new objects.

import {constants} from 'node:fs'
import {copyFile, mkdir, rename, rm, stat} from 'node:fs/promises'
import {join} from 'node:path'

import {tempPathFor, writeFileAtomic} from '../util/fs.js'
import {forEachLimit} from '../util/concurrency.js'
import {HttpClient, Response} from './http.js'
import {MAX_INDEX_BYTES, ReleaseObject} from './index.js'
import {ReleaseSource} from './source.js'

const objectRel = (hex: string): string => `objects/${hex.slice(0, 2)}/${hex.slice(2)}`

export class StaticSource implements ReleaseSource {
  readonly http: HttpClient
  readonly name: string
  private readonly base: string

  constructor(
    url: string,
    readonly channel: string,
    http: HttpClient,
  ) {
    this.http = http
    this.base = url.endsWith('/') ? url : `${url}/`
    this.name = `${this.base}releases/${channel}.json`
  }

  async fetchEnvelope(): Promise<Buffer> {
    const res = await this.http.request(this.name)
    if (res.status !== 200) throw await this.http.statusError(res, this.name)
    return this.http.readBody(res, MAX_INDEX_BYTES)
  }

  async open(o: ReleaseObject, kind: 'image' | 'object', offset: number): Promise<Response> {
    const url = this.base + (kind === 'image' ? `images/${o.digest}` : objectRel(o.digest))
    const res = await this.http.request(url, offset ? {offset} : {})
    if (res.status !== 200 && res.status !== 206) throw await this.http.statusError(res, url)
    return res
  }

  async close(): Promise<void> {
    await this.http.close()
  }
}

/** Files copied at once while publishing (I/O-bound; libuv's pool does the work). */
const COPY_CONCURRENCY = 8

async function sizeOf(path: string): Promise<number | null> {
  const st = await stat(path).catch(() => null)
  return st?.isFile() ? st.size : null
}

async function placeFile(src: string, dst: string): Promise<void> {
  const tmp = tempPathFor(dst)
  try {
    await copyFile(src, tmp, constants.COPYFILE_FICLONE | constants.COPYFILE_EXCL)
    await rename(tmp, dst)
  } catch (err) {
    await rm(tmp, {force: true})
    throw err
  }
}

export interface UploadCounts {
  uploaded: number
  present: number
  bytesUploaded: number
}

/**
 * Writes a release into a static repository directory: objects the directory lacks, the image,
 * then the index (the switch). `files` maps each object's fs-verity hex to its source file.
 */
export async function publishStatic(opts: {
  to: string
  channel: string
  image: {entry: ReleaseObject; path: string}
  objects: {entry: ReleaseObject; path: string}[]
  envelope: Buffer
  onProgress?: (done: number, total: number) => void
}): Promise<UploadCounts> {
  const counts: UploadCounts = {uploaded: 0, present: 0, bytesUploaded: 0}
  for (const d of ['objects', 'images', 'releases']) await mkdir(join(opts.to, d), {recursive: true})
  let done = 0
  await forEachLimit(opts.objects, COPY_CONCURRENCY, async ({entry, path}) => {
    const dst = join(opts.to, objectRel(entry.digest))
    if ((await sizeOf(dst)) === entry.size) counts.present++
    else {
      await mkdir(join(opts.to, 'objects', entry.digest.slice(0, 2)), {recursive: true})
      await placeFile(path, dst)
      counts.uploaded++
      counts.bytesUploaded += entry.size
    }
    opts.onProgress?.(++done, opts.objects.length)
  })
  const img = join(opts.to, 'images', opts.image.entry.digest)
  if ((await sizeOf(img)) !== opts.image.entry.size) await placeFile(opts.image.path, img)
  await writeFileAtomic(join(opts.to, 'releases', `${opts.channel}.json`), opts.envelope)
  return counts
}
