// Probes for external tools and capabilities, so tests can say exactly why they skip.
import {execFileSync, spawnSync} from 'node:child_process'

export function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
}

/** A reason to skip when `tool` is missing, or false (node:test's `skip` option takes either). */
export function needTool(tool: string, pkg = tool): string | false {
  return hasTool(tool) ? false : `${tool} is not installed (Debian package ${pkg}; .ci/run installs it)`
}

export function isRoot(): boolean {
  return process.getuid?.() === 0
}

export function needRoot(what: string): string | false {
  return isRoot() ? false : `${what} needs root`
}

export function run(cmd: string, args: string[], input?: Buffer | string): string {
  return execFileSync(cmd, args, {encoding: 'utf8', ...(input !== undefined && {input}), maxBuffer: 1 << 30})
}
