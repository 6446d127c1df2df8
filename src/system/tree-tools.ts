// Tools `cfsboot prepare` runs on a root filesystem tree: listing an initramfs (lsinitrd),
// asking the tree's node for its version, installing cfsboot's dependencies (npm) and
// indexing a kernel's modules (depmod).

import {run} from './exec.js'

/** npm ci fetches a few MiB; over a slow link that still ends well within this. */
export const NPM_TIMEOUT_MS = 10 * 60 * 1000

/** The paths inside an initramfs (lsinitrd, from dracut-core; reads every compression dracut writes). */
export async function initramfsPaths(file: string): Promise<string[]> {
  const r = await run('lsinitrd', [file], {what: 'lsinitrd', timeoutMs: 60_000})
  // File lines are `ls -l` style: mode, links, owner, group, size, month, day, time, path.
  const paths: string[] = []
  for (const line of r.stdout.split('\n')) {
    const m = /^[-dlcbps][rwxsStT-]{9}\s+\d+\s+\S+\s+\S+\s+\d+\s+\S+\s+\d+\s+\S+\s+(.+)$/.exec(line)
    if (m) paths.push(m[1]!.replace(/ -> .*$/, ''))
  }
  return paths
}

/**
 * The version a node binary prints ("v20.20.0"), or null when it does not run. As root the
 * binary runs chrooted into the tree, so it finds the tree's libraries as it will on the device.
 */
export async function nodeVersion(tree: string, nodeInTree: string): Promise<string | null> {
  const asRoot = process.getuid?.() === 0
  const r = asRoot
    ? await run('chroot', [tree, nodeInTree, '--version'], {reject: false, timeoutMs: 30_000})
    : await run(`${tree}${nodeInTree}`, ['--version'], {reject: false, timeoutMs: 30_000}).catch(() => null)
  return r?.exitCode === 0 ? r.stdout.trim() : null
}

/** The version of a node binary on this machine. */
export async function hostNodeVersion(path: string): Promise<string | null> {
  const r = await run(path, ['--version'], {reject: false, timeoutMs: 30_000}).catch(() => null)
  return r?.exitCode === 0 ? r.stdout.trim() : null
}

/** `npm ci --omit=dev` in an installed copy of the package (no lifecycle scripts: none are needed). */
export async function npmCiProduction(dir: string): Promise<void> {
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], {
    what: 'npm ci',
    cwd: dir,
    timeoutMs: NPM_TIMEOUT_MS,
  })
}

/** Writes modules.dep and friends for kernel KVER of the tree rooted at `tree`. */
export async function depmodTree(tree: string, kver: string): Promise<void> {
  await run('depmod', ['-b', tree, kver], {what: 'depmod'})
}
