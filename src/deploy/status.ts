// `cfsboot status`: the deployments as the boot loader will see them. The shape is the published
// schema docs/schemas/status.json (checked in the tests).

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
  generation: number | null
  tries: {left: number; done: number} | null
  etcConflicts: string[]
}

export interface Status {
  apiVersion: 'cfsboot/v1'
  kind: 'Status'
  sysroot: string
  booted: string | null
  deployments: StatusDeployment[]
}

export async function status(opts: {paths: Paths; config: Config}): Promise<Status> {
  await requireSysroot(opts.paths)
  const view = await viewSysroot(opts.paths, opts.config)
  return {
    apiVersion: 'cfsboot/v1',
    kind: 'Status',
    sysroot: opts.paths.sysroot,
    booted: view.booted,
    deployments: view.deployments.map((v) => {
      const d = v.deployment
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
        generation: v.entry?.generation ?? null,
        tries:
          v.entry && v.entry.triesLeft !== null
            ? {left: v.entry.triesLeft, done: v.entry.triesDone ?? 0}
            : null,
        etcConflicts: d.etc.conflicts,
      }
    }),
  }
}

/** Human-readable status, one block per deployment (like `ostree admin status`). */
export function formatStatus(s: Status): string {
  if (s.deployments.length === 0) return `no deployments on ${s.sysroot}\n`
  const lines: string[] = []
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
    if (d.tries) lines.push(`     tries:   ${d.tries.left} left, ${d.tries.done} done`)
    if (d.etcConflicts.length)
      lines.push(`     /etc conflicts kept from the administrator: ${d.etcConflicts.join(', ')}`)
  }
  return lines.join('\n') + '\n'
}
