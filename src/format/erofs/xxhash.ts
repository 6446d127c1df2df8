// xxHash32, which EROFS uses for its per-inode xattr name bloom filter
// (EROFS_FEATURE_COMPAT_XATTR_FILTER). Written from the public algorithm description.

const P1 = 2654435761
const P2 = 2246822519
const P3 = 3266489917
const P4 = 668265263
const P5 = 374761393

const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0

function round(acc: number, lane: number): number {
  acc = (acc + Math.imul(lane, P2)) >>> 0
  return Math.imul(rotl(acc, 13), P1) >>> 0
}

export function xxh32(data: Uint8Array, seed: number): number {
  const len = data.length
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength)
  let p = 0
  let h: number
  if (len >= 16) {
    let v1 = (seed + P1 + P2) >>> 0
    let v2 = (seed + P2) >>> 0
    let v3 = seed >>> 0
    let v4 = (seed - P1) >>> 0
    const limit = len - 16
    do {
      v1 = round(v1, view.getUint32(p, true))
      v2 = round(v2, view.getUint32(p + 4, true))
      v3 = round(v3, view.getUint32(p + 8, true))
      v4 = round(v4, view.getUint32(p + 12, true))
      p += 16
    } while (p <= limit)
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) >>> 0
  } else {
    h = (seed + P5) >>> 0
  }
  h = (h + len) >>> 0
  for (; p + 4 <= len; p += 4) {
    h = (h + Math.imul(view.getUint32(p, true), P3)) >>> 0
    h = Math.imul(rotl(h, 17), P4) >>> 0
  }
  for (; p < len; p++) {
    h = (h + Math.imul(data[p]!, P5)) >>> 0
    h = Math.imul(rotl(h, 11), P1) >>> 0
  }
  h ^= h >>> 15
  h = Math.imul(h, P2) >>> 0
  h ^= h >>> 13
  h = Math.imul(h, P3) >>> 0
  h ^= h >>> 16
  return h >>> 0
}
