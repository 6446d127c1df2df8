// The messages between a DigestPool and its workers. Plain data only: they cross threads by
// structured clone, and result buffers are transferred, not copied.

/** An error as it crosses threads: the errno-style code and the one-line message. */
export interface WireError {
  code?: string
  message: string
}

/** Digest whole files; a file of `largeFrom` bytes or more is only sized, for the pool to split. */
export interface FilesTask {
  id: number
  kind: 'files'
  /** Strings, or raw bytes for names that are not UTF-8 (Buffers arrive as Uint8Arrays). */
  paths: (string | Uint8Array)[]
  largeFrom: number
}

/** Level-1 hashes of one range of a large file (see level1OfRange). */
export interface RangeTask {
  id: number
  kind: 'range'
  path: string | Uint8Array
  start: number
  end: number
  size: number
}

export type Task = FilesTask | RangeTask

/** What became of each file of a FilesTask (FilesReply.status). */
export const enum FileStatus {
  /** Its digest is in `digests`. */
  Digested = 0,
  /** At least `largeFrom` bytes: only sized, for the pool to split into ranges. */
  Large = 1,
  /** It could not be digested: see `errors`. */
  Failed = 2,
}

/**
 * The outcome of a FilesTask, packed: a few typed arrays whose buffers are transferred, not one
 * cloned object and array per file (on a tree of 32k files those were megabytes of short-lived
 * objects for the calling thread's garbage collector).
 */
export interface FilesReply {
  id: number
  kind: 'files'
  /** One FileStatus per file. */
  status: Uint8Array
  /** 32 bytes per file; those of files not Digested are zero. */
  digests: Uint8Array
  /** The size of each file Digested or Large. */
  sizes: Float64Array
  /** The error of each Failed file, by its index in the task. */
  errors: {index: number; error: WireError}[]
}

export type Reply =
  FilesReply | {id: number; kind: 'range'; level1: Uint8Array} | {id: number; kind: 'error'; error: WireError}

export function toWireError(err: unknown): WireError {
  const e = err as NodeJS.ErrnoException
  const message = e instanceof Error ? e.message : String(err)
  return typeof e?.code === 'string' ? {code: e.code, message} : {message}
}

export function fromWireError(w: WireError): NodeJS.ErrnoException {
  const err: NodeJS.ErrnoException = new Error(w.message)
  if (w.code !== undefined) err.code = w.code
  return err
}
