// What `cfsboot digest` prints, and how it waits, shared by the early path (early.ts, before
// oclif loads) and the command's own path (digest-files.ts), so neither imports the other.

import type {FilePath} from './pool.js'

/** Awaits `p` with a timer holding the event loop open (the early pool's workers do not). */
export async function keepingProcessAlive<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1 << 30)
  try {
    return await p
  } finally {
    clearInterval(timer)
  }
}

/** The line `fsverity digest` prints for a file: "sha256:<hex> <path>", or the hex alone. */
export function digestLine(o: {path: FilePath; digest: Buffer}, compact: boolean): string {
  const hex = o.digest.toString('hex')
  return compact ? `${hex}\n` : `sha256:${hex} ${String(o.path)}\n`
}
