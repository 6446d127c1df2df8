// `cfsboot digest` without waiting for the CLI framework. Loading oclif and every command costs
// ~250 ms of one core on this project's 2-core machines, more than half the time hashing a GiB
// takes; so bin/run.js hands `digest` invocations here first:
// - the plain form, `digest [--compact] FILE...`, when every file digests fine, is answered
//   here completely (the same lines commands/digest.ts prints) and oclif is never loaded;
// - anything else (--json, --help, an unknown flag, a file that fails) goes on to oclif, and the
//   command adopts the work already started here (takeEarlyDigests), so nothing is hashed twice
//   and the hashing overlaps oclif's loading. Errors and help are always oclif's.
import {availableParallelism} from 'node:os'

import {digestLine, keepingProcessAlive} from './output.js'
import {DigestOutcome, DigestPool} from './pool.js'
import {holdsAtLeast, WORKERS_FROM_BYTES} from './sizes.js'

interface EarlyWork {
  paths: string[]
  pool: DigestPool
  outcomes: Promise<DigestOutcome[]>
}

let early: EarlyWork | undefined

/** What the arguments of `digest` ask for, as far as this fast path understands them. */
export function readArguments(args: string[]): {files: string[]; compact: boolean; plain: boolean} {
  const files: string[] = []
  let compact = false
  let plain = true // only files and --compact
  let onlyFiles = false
  for (const a of args) {
    if (onlyFiles || !a.startsWith('-') || a === '-') files.push(a)
    else if (a === '--') onlyFiles = true
    else if (a === '--compact') compact = true
    else if (a === '--help' || a === '-h') return {files: [], compact, plain: false}
    else plain = false
  }
  return {files, compact, plain: plain && files.length > 0}
}

/**
 * Starts digesting `paths`. Small inputs are hashed on this thread alone (a worker costs more to
 * start); large ones by workers on all cores but this one, plus this one when `mainThread`.
 */
function startEarly(paths: string[], mainThread: boolean): EarlyWork {
  const pool = !holdsAtLeast(paths, WORKERS_FROM_BYTES)
    ? new DigestPool({threads: 0, mainThread: true})
    : new DigestPool({
        threads: Math.max(1, availableParallelism() - 1),
        mainThread,
        keepProcessAlive: false,
      })
  const outcomes = pool.digestFilesSettled(paths)
  outcomes.catch(() => {}) // adopted or not, never an unhandled rejection
  early = {paths, pool, outcomes}
  return early
}

/**
 * Called by bin/run.js with the arguments after `digest`, before oclif is loaded. Returns the
 * exit code when it has printed the whole answer, or undefined when oclif should run the command.
 */
export async function digestBeforeOclif(args: string[]): Promise<number | undefined> {
  const {files, compact, plain} = readArguments(args)
  if (files.length === 0) return undefined
  const work = startEarly(files, plain)
  if (!plain) return undefined
  const outcomes = await keepingProcessAlive(work.outcomes)
  if (outcomes.some((o) => 'error' in o)) return undefined // the command reports it
  early = undefined
  await work.pool.close()
  process.stdout.write(
    outcomes.map((o) => digestLine(o as Extract<DigestOutcome, {digest: Buffer}>, compact)).join(''),
  )
  return 0
}

/** The work started for exactly `paths`, if any; it is handed over once. */
export function takeEarlyDigests(
  paths: string[],
): {pool: DigestPool; outcomes: Promise<DigestOutcome[]>} | undefined {
  const e = early
  if (!e || e.paths.length !== paths.length || e.paths.some((p, i) => p !== paths[i])) return undefined
  early = undefined
  return e
}
