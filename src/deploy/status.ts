// `cfsboot status`: the deployments as the boot loader will see them. The shape is the published
// schema docs/schemas/status.json (checked in the tests).

import {HealthRecord, LoaderVars, readHealthRecord, readLoaderVars} from '../boot/health.js'
import {Config} from './config.js'
import {Paths, requireSysroot} from './paths.js'
import {viewSysroot} from './view.js'

export interface StatusDeployment {
  index: number
  digest: string
  booted: boolean
  /** Boots next (the default entry). */
  staged: boolean
  rollback: boolean
  pinned: boolean
  /** Boot counting ran out: the boot loader no longer picks it. */
  failed: boolean
  kept: boolean
  name: string | null
  version: string | null
  created: string
  kernel: string
  objects: {count: number; bytes: number}
  entry: string | null
  /** bls: loader/entries/ENTRY; uki: a signed unified kernel image EFI/Linux/ENTRY. */
  entryKind: 'bls' | 'uki' | null
  generation: number | null
  tries: {left: number; done: number} | null
  etcConflicts: string[]
  /** The last health-check run for it (SYSROOT/var/lib/cfsboot/health/DIGEST.json), or null. */
  health: HealthRecord | null
  /** Why it is failed, in one line (null when it is not). */
  failedReason: string | null
}

export interface Status {
  apiVersion: 'cfsboot/v1'
  kind: 'Status'
  sysroot: string
  booted: string | null
  /** The boot loader's EFI variables, or null where they cannot be read (not booted by UEFI, a host). */
  loader: LoaderVars | null
  deployments: StatusDeployment[]
}

function failedReason(
  failed: boolean,
  tries: {done: number} | null,
  health: HealthRecord | null,
): string | null {
  if (!failed) return null
  const parts = [`boot counting ran out after ${tries?.done ?? 0} tr${tries?.done === 1 ? 'y' : 'ies'}`]
  if (health?.result === 'failed')
    parts.push(`health check${health.failed.length === 1 ? '' : 's'} failed: ${health.failed.join(', ')}`)
  else if (!health) parts.push('no health record (the boot did not get as far as the checks)')
  return parts.join('; ')
}

export async function status(opts: {paths: Paths; config: Config}): Promise<Status> {
  await requireSysroot(opts.paths)
  const view = await viewSysroot(opts.paths, opts.config)
  const health = await Promise.all(
    view.deployments.map((v) => readHealthRecord(opts.paths.var, v.deployment.digest)),
  )
  const loader = await readLoaderVars()
  return {
    apiVersion: 'cfsboot/v1',
    kind: 'Status',
    sysroot: opts.paths.sysroot,
    booted: view.booted,
    loader,
    deployments: view.deployments.map((v, i) => {
      const d = v.deployment
      const tries =
        v.entry && v.entry.triesLeft !== null ? {left: v.entry.triesLeft, done: v.entry.triesDone ?? 0} : null
      return {
        index: v.index,
        digest: d.digest,
        booted: v.booted,
        staged: v.default,
        rollback: v.rollback,
        pinned: d.pinned,
        failed: v.failed,
        kept: v.kept,
        name: d.osRelease.PRETTY_NAME ?? d.osRelease.NAME ?? null,
        version: d.osRelease.VERSION_ID ?? d.osRelease.VERSION ?? null,
        created: d.created,
        kernel: d.kernel.version,
        objects: d.objects,
        entry: v.entry?.file ?? null,
        entryKind: v.entry?.kind ?? null,
        generation: v.entry?.generation ?? null,
        tries,
        etcConflicts: d.etc.conflicts,
        health: health[i]!,
        failedReason: failedReason(v.failed, tries, health[i]!),
      }
    }),
  }
}

/** Human-readable status, one block per deployment (like `ostree admin status`). */
export function formatStatus(s: Status): string {
  if (s.deployments.length === 0) return `no deployments on ${s.sysroot}\n`
  const lines: string[] = []
  if (s.loader) {
    lines.push(
      `boot loader: booted ${s.loader.entrySelected ?? 'unknown entry'}${s.loader.bootCountPath ? ` (counted: ${s.loader.bootCountPath})` : ''}, Secure Boot ${s.loader.secureBoot === null ? 'unknown' : s.loader.secureBoot ? 'on' : 'off'}`,
    )
  }
  for (const d of s.deployments) {
    const marks = [
      d.booted && 'booted',
      d.staged && 'staged',
      d.rollback && 'rollback',
      d.pinned && 'pinned',
      d.failed && 'failed',
      !d.entry && 'no boot entry',
    ].filter(Boolean)
    lines.push(
      `${d.booted ? '*' : ' '} ${d.index}: ${d.name ?? 'unknown'}${d.version ? ` ${d.version}` : ''} ${d.digest.slice(0, 12)}${marks.length ? ` (${marks.join(', ')})` : ''}`,
    )
    lines.push(`     digest:  ${d.digest}`)
    lines.push(
      `     created: ${d.created}   kernel: ${d.kernel}   objects: ${d.objects.count} (${d.objects.bytes} bytes)`,
    )
    if (d.entry)
      lines.push(`     entry:   ${d.entryKind === 'uki' ? 'EFI/Linux/' : 'loader/entries/'}${d.entry}`)
    if (d.tries) lines.push(`     tries:   ${d.tries.left} left, ${d.tries.done} done (boot counting)`)
    if (d.failedReason) lines.push(`     failed:  ${d.failedReason}`)
    else if (d.health?.result === 'failed')
      lines.push(`     health:  failed at ${d.health.time}: ${d.health.failed.join(', ')}`)
    else if (d.health?.result === 'good') lines.push(`     health:  good at ${d.health.time}`)
    if (d.etcConflicts.length)
      lines.push(`     /etc conflicts kept from the administrator: ${d.etcConflicts.join(', ')}`)
  }
  return lines.join('\n') + '\n'
}
