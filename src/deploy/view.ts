// One view of a sysroot's deployments that every verb shares: deployments in boot order, with
// which one is booted, which boots next (default), which is the rollback, and what is kept.
// Kept by gc: the booted one, the default, `keep-rollback` more bootable ones, the pinned ones,
// and always the last good one (an entry without a boot counter).

import {InvalidInputError} from '../errors.js'
import {acquireLock} from '../system/lock.js'
import {bootedDigest} from './booted.js'
import {Config} from './config.js'
import {Deployment, listDeployments} from './deployments.js'
import {BootEntry, readEntries} from './entries.js'
import {Paths, requireSysroot} from './paths.js'

export interface DeploymentView {
  /** Position in boot order (0 boots next); deployments without an entry come last. */
  index: number
  deployment: Deployment
  entry: BootEntry | null
  booted: boolean
  /** Boots next. */
  default: boolean
  /** What `rollback` would make the default. */
  rollback: boolean
  /** The boot loader gave up on it (boot counting ran out of tries). */
  failed: boolean
  /** Kept by gc. */
  kept: boolean
}

export interface SysrootView {
  booted: string | null
  deployments: DeploymentView[]
  /** Entries whose deployment is missing, and deployment dirs that cannot be read. */
  danglingEntries: BootEntry[]
  /** Older extra entries of a deployment that has a newer one (a rename interrupted by a crash). */
  staleEntries: BootEntry[]
  brokenDeployments: string[]
  invalidEntries: string[]
}

export async function viewSysroot(paths: Paths, config: Config): Promise<SysrootView> {
  const [{deployments, broken}, {entries, invalid}, booted] = await Promise.all([
    listDeployments(paths),
    readEntries(paths.entries),
    bootedDigest(),
  ])
  const byDigest = new Map(deployments.map((d) => [d.digest, d]))
  const ordered: {d: Deployment; e: BootEntry | null}[] = []
  const danglingEntries: BootEntry[] = []
  const staleEntries: BootEntry[] = []
  const seen = new Set<string>()
  for (const e of entries) {
    const d = byDigest.get(e.digest)
    if (!d) {
      danglingEntries.push(e)
      continue
    }
    if (seen.has(e.digest)) {
      staleEntries.push(e) // the first one in boot order is the one the boot loader uses
      continue
    }
    seen.add(e.digest)
    ordered.push({d, e})
  }
  for (const d of deployments) if (!seen.has(d.digest)) ordered.push({d, e: null})

  const bootable = ordered.filter((o) => o.e && o.e.triesLeft !== 0)
  const defaultDigest = bootable[0]?.d.digest ?? null
  const rollbackDigest = bootable.find((o) => o.d.digest !== defaultDigest)?.d.digest ?? null
  // Kept: booted, default, the next `keepRollback` bootable ones, and pinned ones.
  const keep = new Set<string>()
  if (booted) keep.add(booted)
  if (defaultDigest) keep.add(defaultDigest)
  let rollbacks = 0
  for (const o of bootable) {
    if (keep.has(o.d.digest) || o.d.digest === booted) continue
    if (rollbacks >= config.keepRollback) break
    keep.add(o.d.digest)
    rollbacks++
  }
  for (const o of ordered) if (o.d.pinned) keep.add(o.d.digest)
  // The last good deployment: the first in boot order whose entry has no boot counter (marked
  // good, or installed/chosen by the administrator). While a new deployment is still counting its
  // tries, this is what the boot loader falls back to; gc must never take it away.
  const lastGood = ordered.find((o) => o.e && o.e.triesLeft === null)
  if (lastGood) keep.add(lastGood.d.digest)

  return {
    booted,
    deployments: ordered.map((o, index) => ({
      index,
      deployment: o.d,
      entry: o.e,
      booted: o.d.digest === booted,
      default: o.d.digest === defaultDigest,
      rollback: o.d.digest === rollbackDigest,
      failed: o.e?.triesLeft === 0,
      kept: keep.has(o.d.digest),
    })),
    danglingEntries,
    staleEntries,
    brokenDeployments: broken,
    invalidEntries: invalid,
  }
}

/** Finds a deployment by index ("0", "1", …) or by a digest prefix of at least 6 hex digits. */
export function selectDeployment(view: SysrootView, which: string): DeploymentView | undefined {
  if (/^\d+$/.test(which)) return view.deployments[Number(which)]
  if (!/^[0-9a-f]{6,64}$/.test(which)) return undefined
  const found = view.deployments.filter((d) => d.deployment.digest.startsWith(which))
  return found.length === 1 ? found[0] : undefined
}

/** selectDeployment, or one clear line naming what was asked for. */
export function requireDeployment(view: SysrootView, which: string): DeploymentView {
  const sel = selectDeployment(view, which)
  if (!sel) throw new InvalidInputError(`no deployment ${JSON.stringify(which)} (see cfsboot status)`)
  return sel
}

/**
 * The prologue of every state-changing verb: refuse what is not a cfsboot sysroot, take the
 * sysroot lock, and hand `fn` a view read under it (so nothing changes between look and act).
 */
export async function withLockedView<T>(
  opts: {paths: Paths; config: Config; lockTimeout?: number},
  fn: (view: SysrootView) => Promise<T>,
): Promise<T> {
  await requireSysroot(opts.paths)
  const lock = await acquireLock(
    opts.paths.lock,
    opts.lockTimeout !== undefined ? {timeout: opts.lockTimeout} : {},
  )
  try {
    return await fn(await viewSysroot(opts.paths, opts.config))
  } finally {
    lock.release()
  }
}
