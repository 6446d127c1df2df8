// The signed release index: what a device trusts about a release before it downloads anything.
//
// On the wire it is an envelope (JSON):
//   {"apiVersion":"cfsboot/v1","kind":"SignedRelease","payload":"<base64>",
//    "signatures":[{"keyId":"<16 hex>","signature":"<base64 ed25519>"}]}
// The signature covers SIGNING_CONTEXT + the payload's bytes exactly as sent, so nothing is
// parsed before it is verified. The payload (JSON, docs/schemas/release-index.json):
//   {"apiVersion":"cfsboot/v1","kind":"Release","channel":"stable","created":"<ISO time>",
//    "image":{"digest":"<fs-verity hex>","sha256":"<hex>","size":N},
//    "objects":[["<fs-verity hex>",size,"<sha256 hex>"],…]}
// Objects are named only by 64-hex digests (never paths): the fs-verity digest is what the store
// and the image use, the sha256 is the blob name in an OCI registry. Limits below are enforced
// before anything is downloaded, so a hostile index cannot make a device fetch or allocate much.

import {createHash, createPrivateKey, createPublicKey, KeyObject, sign, verify} from 'node:crypto'
import {readFile} from 'node:fs/promises'

import {CfsError, ExitCode, InvalidInputError} from '../errors.js'
import {MAX_IMAGE_SIZE} from '../deploy/images.js'

/** The envelope is refused above this size (30,000 objects take about 4.5 MB). */
export const MAX_INDEX_BYTES = 64 << 20
/** Objects one release may list. */
export const MAX_OBJECTS = 2_000_000
/** One object's size (a file in a root filesystem). */
export const MAX_OBJECT_SIZE = 2 ** 40
/** A whole release's bytes. */
export const MAX_RELEASE_BYTES = 2 ** 44
/** Signatures on one envelope. */
export const MAX_SIGNATURES = 16
/** Domain separation: a cfsboot release signature is never valid for anything else. */
export const SIGNING_CONTEXT = Buffer.from('cfsboot release index v1\n')

const HEX64 = /^[0-9a-f]{64}$/
/** Channels are OCI tags too. */
export const CHANNEL_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/

export interface ReleaseObject {
  /** fs-verity digest, hex. */
  digest: string
  size: number
  /** sha256 of the bytes, hex (the OCI blob name). */
  sha256: string
}

export interface Release {
  channel: string
  created: string
  image: ReleaseObject
  objects: ReleaseObject[]
}

/** The index is not signed by a trusted key, or its signature is wrong. */
export class SignatureError extends CfsError {
  constructor(message: string) {
    super('ESIGNATURE', message, ExitCode.Verification)
    this.name = 'SignatureError'
  }
}

/** The key id: the first 16 hex digits of sha256 over the raw 32-byte public key. */
export function keyId(pub: KeyObject): string {
  const raw = pub.export({format: 'der', type: 'spki'}).subarray(-32)
  return createHash('sha256').update(raw).digest('hex').slice(0, 16)
}

export async function loadPrivateKey(path: string): Promise<KeyObject> {
  let k: KeyObject
  try {
    k = createPrivateKey(await readFile(path))
  } catch {
    throw new InvalidInputError(`${path}: not a readable PEM private key`)
  }
  if (k.asymmetricKeyType !== 'ed25519') throw new InvalidInputError(`${path}: not an ed25519 key`)
  return k
}

export async function loadPublicKey(path: string): Promise<KeyObject> {
  let k: KeyObject
  try {
    k = createPublicKey(await readFile(path))
  } catch {
    throw new InvalidInputError(`${path}: not a readable PEM public key`)
  }
  if (k.asymmetricKeyType !== 'ed25519') throw new InvalidInputError(`${path}: not an ed25519 key`)
  return k
}

function encodePayload(r: Release): Buffer {
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'cfsboot/v1',
      kind: 'Release',
      channel: r.channel,
      created: r.created,
      image: r.image,
      objects: r.objects.map((o) => [o.digest, o.size, o.sha256]),
    }),
  )
}

/** The signed envelope's bytes. */
export function signRelease(r: Release, key: KeyObject): Buffer {
  const payload = encodePayload(r)
  const pub = createPublicKey(key)
  const signature = sign(null, Buffer.concat([SIGNING_CONTEXT, payload]), key).toString('base64')
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'cfsboot/v1',
      kind: 'SignedRelease',
      payload: payload.toString('base64'),
      signatures: [{keyId: keyId(pub), signature}],
    }),
  )
}

const bad = (what: string): InvalidInputError => new InvalidInputError(`release index: ${what}`)

function size(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max)
    throw bad(`${what} has an absurd size`)
  return v
}

function hex(v: unknown, what: string): string {
  if (typeof v !== 'string' || !HEX64.test(v)) throw bad(`${what} is not a 64-hex digest`)
  return v
}

/** Parses a payload that was already verified; every field is checked against the limits. */
export function parsePayload(payload: Buffer): Release {
  let p: Record<string, unknown>
  try {
    p = JSON.parse(payload.toString('utf8')) as Record<string, unknown>
  } catch {
    throw bad('payload is not JSON')
  }
  if (typeof p !== 'object' || p === null || p['apiVersion'] !== 'cfsboot/v1' || p['kind'] !== 'Release')
    throw bad('not a cfsboot/v1 Release')
  const channel = p['channel']
  if (typeof channel !== 'string' || !CHANNEL_RE.test(channel)) throw bad('bad channel name')
  const created = p['created']
  if (typeof created !== 'string' || created.length > 64 || Number.isNaN(Date.parse(created)))
    throw bad('bad creation time')
  const img = p['image'] as Record<string, unknown> | null
  if (typeof img !== 'object' || img === null) throw bad('no image')
  const image = {
    digest: hex(img['digest'], 'image digest'),
    size: size(img['size'], MAX_IMAGE_SIZE, 'the image'),
    sha256: hex(img['sha256'], 'image sha256'),
  }
  const list = p['objects']
  if (!Array.isArray(list)) throw bad('no object list')
  if (list.length > MAX_OBJECTS) throw bad(`${list.length} objects, over the limit of ${MAX_OBJECTS}`)
  const seen = new Set<string>()
  let total = 0
  const objects = list.map((e: unknown, i): ReleaseObject => {
    if (!Array.isArray(e) || e.length !== 3) throw bad(`object ${i} is not [digest, size, sha256]`)
    const o = {
      digest: hex(e[0], `object ${i}`),
      size: size(e[1], MAX_OBJECT_SIZE, `object ${i}`),
      sha256: hex(e[2], `object ${i} sha256`),
    }
    if (seen.has(o.digest)) throw bad(`object ${o.digest} is listed twice`)
    seen.add(o.digest)
    total += o.size
    if (total > MAX_RELEASE_BYTES) throw bad('the release has an absurd total size')
    return o
  })
  return {channel, created, image, objects}
}

/**
 * Verifies the envelope with the trusted keys, then parses the payload. Refuses an unsigned
 * envelope, one no trusted key signed, and any whose signature does not verify.
 */
export function verifyRelease(envelope: Buffer, trusted: KeyObject[]): Release & {keyId: string} {
  if (envelope.length > MAX_INDEX_BYTES) throw bad(`over ${MAX_INDEX_BYTES} bytes`)
  let e: {kind?: unknown; payload?: unknown; signatures?: unknown}
  try {
    e = JSON.parse(envelope.toString('utf8')) as typeof e
  } catch {
    throw new SignatureError('the release index is not a signed envelope (not JSON)')
  }
  if (typeof e !== 'object' || e === null || e.kind !== 'SignedRelease' || typeof e.payload !== 'string')
    throw new SignatureError('the release index is not a signed envelope')
  const sigs = Array.isArray(e.signatures) ? e.signatures.slice(0, MAX_SIGNATURES) : []
  if (!sigs.length) throw new SignatureError('the release index is not signed')
  if (!trusted.length)
    throw new InvalidInputError('no trusted keys configured ([remote] trusted-keys in cfsboot.conf)')
  const payload = Buffer.from(e.payload, 'base64')
  const message = Buffer.concat([SIGNING_CONTEXT, payload])
  const byId = new Map(trusted.map((k) => [keyId(k), k]))
  for (const s of sigs as {keyId?: unknown; signature?: unknown}[]) {
    const k = typeof s?.keyId === 'string' ? byId.get(s.keyId) : undefined
    if (!k || typeof s.signature !== 'string') continue
    if (!verify(null, message, k, Buffer.from(s.signature, 'base64')))
      throw new SignatureError(`the release index's signature by key ${s.keyId as string} does not verify`)
    return {...parsePayload(payload), keyId: s.keyId as string}
  }
  throw new SignatureError(
    `the release index is signed by key(s) ${sigs.map((s) => String((s as {keyId?: unknown})?.keyId).slice(0, 16)).join(', ')}, none of them trusted`,
  )
}

/** The payload of an envelope this device wrote itself (downloads/), without verifying again. */
export function localPayload(envelope: Buffer): Release {
  const e = JSON.parse(envelope.toString('utf8')) as {payload: string}
  return parsePayload(Buffer.from(e.payload, 'base64'))
}
