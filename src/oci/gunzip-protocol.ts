// Messages between gunzip.ts and its worker (gunzip-worker.ts), and the sizes both sides share.

/** Decompressed bytes per chunk (zlib's output buffer). */
export const GUNZIP_CHUNK = 1 << 20
/** Decompressed chunks the worker may have sent that the reader has not consumed yet. */
export const GUNZIP_OUTPUT_AHEAD = 4
/** Compressed chunks sent to the worker that it has not consumed yet. */
export const GUNZIP_INPUT_AHEAD = 4

export type ToGunzip = {type: 'data'; buf: ArrayBuffer} | {type: 'end'} | {type: 'ack'}

export type FromGunzip =
  | {type: 'data'; buf: ArrayBuffer}
  | {type: 'need'}
  | {type: 'end'; sha256: string}
  | {type: 'error'; message: string; code: string}
