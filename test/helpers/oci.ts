// Test helpers for container images: an OCI image layout written by hand (blobs, config,
// manifest, index.json), layers made with GNU tar, and a tiny tar writer for hostile archives
// built byte by byte.

import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {mkdirSync, readFileSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {gunzipSync} from 'node:zlib'

export const sha256 = (b: Uint8Array): string => 'sha256:' + createHash('sha256').update(b).digest('hex')

export interface LayerBlob {
  /** The blob as stored (compressed or not). */
  blob: Buffer
  /** The uncompressed tar. */
  tar: Buffer
  mediaType: string
}

export function gzipLayer(tar: Buffer): LayerBlob {
  const blob = execFileSync('gzip', ['-1', '-n', '-c'], {input: tar, maxBuffer: 1 << 30})
  return {blob, tar, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip'}
}

export function zstdLayer(tar: Buffer): LayerBlob {
  const blob = execFileSync('zstd', ['-q', '-c', '-3'], {input: tar, maxBuffer: 1 << 30})
  return {blob, tar, mediaType: 'application/vnd.oci.image.layer.v1.tar+zstd'}
}

export function plainLayer(tar: Buffer): LayerBlob {
  return {blob: tar, tar, mediaType: 'application/vnd.oci.image.layer.v1.tar'}
}

/** A PAX tar of a directory tree, as image builders write layers (GNU tar, numeric owners, xattrs). */
export function tarDir(dir: string, members: string[] = ['.']): Buffer {
  return execFileSync(
    'tar',
    [
      '--format=pax',
      '--numeric-owner',
      '--xattrs',
      '--xattrs-include=*',
      '--sort=name',
      '-C',
      dir,
      '-cf',
      '-',
      ...members,
    ],
    {maxBuffer: 1 << 30},
  )
}

function writeBlob(dir: string, data: Buffer): string {
  const d = sha256(data)
  mkdirSync(join(dir, 'blobs', 'sha256'), {recursive: true})
  writeFileSync(join(dir, 'blobs', 'sha256', d.slice(7)), data)
  return d
}

export interface LayoutOptions {
  tag?: string
  arch?: string
  /** Overrides applied to the manifest's layer descriptors (hostile tests). */
  layerDigests?: (string | undefined)[]
}

/** Writes an OCI image layout with one image; returns the manifest digest. */
export function writeLayout(dir: string, layers: LayerBlob[], opts: LayoutOptions = {}): string {
  mkdirSync(dir, {recursive: true})
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  const config = Buffer.from(
    JSON.stringify({
      architecture: opts.arch ?? 'amd64',
      os: 'linux',
      rootfs: {type: 'layers', diff_ids: layers.map((l) => sha256(l.tar))},
      config: {},
    }),
  )
  const configDigest = writeBlob(dir, config)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: layers.map((l, i) => ({
        mediaType: l.mediaType,
        digest: opts.layerDigests?.[i] ?? writeBlob(dir, l.blob),
        size: l.blob.length,
      })),
    }),
  )
  for (const l of layers) writeBlob(dir, l.blob)
  const manifestDigest = writeBlob(dir, manifest)
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: manifestDigest,
        size: manifest.length,
        ...(opts.tag && {annotations: {'org.opencontainers.image.ref.name': opts.tag}}),
        platform: {os: 'linux', architecture: opts.arch ?? 'amd64'},
      },
    ],
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify(index))
  return manifestDigest
}

/** Reads a layout's index.json (to rewrite it in tests). */
export const readIndex = (dir: string): {manifests: Record<string, unknown>[]} =>
  JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as {manifests: Record<string, unknown>[]}

export const gunzip = (b: Buffer): Buffer => gunzipSync(b)

// ---- a minimal tar writer (ustar headers, optional PAX records) for hostile archives ----

export interface TarSpec {
  name: string
  type?: string
  mode?: number
  uid?: number
  gid?: number
  size?: number
  mtime?: number
  linkname?: string
  data?: Buffer
  pax?: Record<string, string | Buffer>
  devmajor?: number
  devminor?: number
}

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1')
}

function header(s: TarSpec, size: number): Buffer {
  const b = Buffer.alloc(512)
  b.write(s.name.slice(0, 100), 0, 100, 'latin1')
  octal(b, 100, 8, s.mode ?? 0o644)
  octal(b, 108, 8, s.uid ?? 0)
  octal(b, 116, 8, s.gid ?? 0)
  if (size > 0o77777777777) {
    // base-256 for sizes beyond 11 octal digits
    b[124] = 0x80
    let v = BigInt(size)
    for (let i = 135; i > 124; i--) {
      b[i] = Number(v & 0xffn)
      v >>= 8n
    }
  } else octal(b, 124, 12, size)
  octal(b, 136, 12, s.mtime ?? 1700000000)
  b.write(s.type ?? '0', 156, 1, 'latin1')
  b.write((s.linkname ?? '').slice(0, 100), 157, 100, 'latin1')
  b.write('ustar\u000000', 257, 8, 'latin1')
  octal(b, 329, 8, s.devmajor ?? 0)
  octal(b, 337, 8, s.devminor ?? 0)
  b.fill(0x20, 148, 156)
  let sum = 0
  for (const c of b) sum += c
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1')
  return b
}

const padTo512 = (n: number): Buffer => Buffer.alloc((512 - (n % 512)) % 512)

function paxBody(rec: Record<string, string | Buffer>): Buffer {
  const parts: Buffer[] = []
  for (const [k, v] of Object.entries(rec)) {
    const val = typeof v === 'string' ? Buffer.from(v, 'latin1') : v
    const core = Buffer.concat([Buffer.from(` ${k}=`, 'latin1'), val, Buffer.from('\n')])
    let len = core.length + 1
    while (String(len).length + core.length !== len) len = String(len).length + core.length
    parts.push(Buffer.concat([Buffer.from(String(len)), core]))
  }
  return Buffer.concat(parts)
}

/** A tar archive of the given entries (data after each regular file, two zero blocks at the end). */
export function makeTar(entries: TarSpec[], {end = true} = {}): Buffer {
  const out: Buffer[] = []
  for (const s of entries) {
    if (s.pax) {
      const body = paxBody(s.pax)
      out.push(header({name: 'PaxHeader', type: 'x'}, body.length), body, padTo512(body.length))
    }
    const data = s.data ?? Buffer.alloc(0)
    const size = s.size ?? data.length
    out.push(header(s, size), data, padTo512(data.length))
  }
  if (end) out.push(Buffer.alloc(1024))
  return Buffer.concat(out)
}
