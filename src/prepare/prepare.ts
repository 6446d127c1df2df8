// `cfsboot prepare TREE [--fix]`: is this root filesystem tree ready to become a cfsboot image
// (docs/device-image.md)? Inspect, judge, optionally fix what cfsboot owns, judge again.

import {stat} from 'node:fs/promises'
import {resolve} from 'node:path'

import {InvalidInputError} from '../errors.js'
import {CheckId, PrepareCheck, runChecks} from './checks.js'
import {applyFixes, FixOptions} from './fix.js'
import {inspectTree} from './inspect.js'

export interface PrepareOptions extends FixOptions {
  tree: string
  fix?: boolean
}

export interface PrepareResult {
  tree: string
  /** No check of level error failed. */
  ok: boolean
  /** The checks --fix acted on (empty without --fix). */
  fixed: CheckId[]
  /** The state after the fixes. */
  checks: PrepareCheck[]
}

export async function prepare(opts: PrepareOptions): Promise<PrepareResult> {
  const tree = resolve(opts.tree)
  if (!(await stat(tree).catch(() => null))?.isDirectory())
    throw new InvalidInputError(`${tree} is not a directory`)
  let facts = await inspectTree(tree)
  let checks = runChecks(facts, opts.flavour)
  let fixed: CheckId[] = []
  if (opts.fix) {
    const failed = new Set(checks.filter((c) => !c.ok && c.remedy === 'fix').map((c) => c.id))
    if (failed.size > 0) {
      fixed = await applyFixes(facts, failed, opts)
      facts = await inspectTree(tree)
      checks = runChecks(facts, opts.flavour)
    }
  }
  return {tree, ok: checks.every((c) => c.ok || c.level === 'warning'), fixed, checks}
}

export function formatPrepare(r: PrepareResult): string {
  const lines = r.checks.map((c) => {
    const mark = c.ok ? 'ok  ' : c.level === 'error' ? 'FAIL' : 'warn'
    const hint = c.ok
      ? ''
      : c.remedy === 'fix'
        ? ' (cfsboot prepare --fix)'
        : c.packages.length
          ? ` (install: ${c.packages.join(' ')})`
          : ''
    return `${mark} ${c.id}: ${c.detail}${hint}${r.fixed.includes(c.id) ? ' [fixed]' : ''}`
  })
  lines.push(r.ok ? `${r.tree}: ready` : `${r.tree}: not ready`)
  return `${lines.join('\n')}\n`
}
