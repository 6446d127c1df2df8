// `--help` and `--version` without loading oclif. Loading @oclif/core and its command index is
// most of a short command's start-up; these two answers need neither, when the output is known:
//   --version: oclif prints its user agent, `NAME/VERSION PLATFORM-ARCH node-VERSION`;
//   --help:    oclif's own rendering for a pipe (80 columns, no colour), saved at build time by
//              scripts/help-cache.mjs in help-cache.json next to this file.
// Anything else (a terminal, whose width and colours change the rendering, OCLIF_COLUMNS or
// FORCE_COLOR set, other arguments around the flag, a missing cache) returns false, and oclif
// answers as usual. test/fast-help.test.ts compares every cached answer with oclif's.
import {readFileSync} from 'node:fs'
import {release} from 'node:os'

interface HelpCache {
  help: Record<string, string>
}

function readJson<T>(url: URL): T | null {
  try {
    return JSON.parse(readFileSync(url, 'utf8')) as T
  } catch {
    return null
  }
}

/** oclif names the platform "wsl" under Windows' Linux subsystem; leave that case to oclif. */
function isWsl(): boolean {
  if (process.platform !== 'linux') return false
  if (release().toLowerCase().includes('microsoft')) return true
  try {
    return readFileSync('/proc/version', 'utf8').toLowerCase().includes('microsoft')
  } catch {
    return false
  }
}

/** Writes the answer and returns true when `argv` (the arguments after the program) is one of the two. */
export function answerWithoutOclif(argv: readonly string[]): boolean {
  const env = process.env
  if (env.CFSBOOT_NO_FAST_HELP || env.OCLIF_COLUMNS || env.FORCE_COLOR !== undefined) return false
  if (argv.length === 1 && argv[0] === '--version') {
    if (isWsl()) return false
    const pkg = readJson<{name: string; version: string}>(new URL('../../package.json', import.meta.url))
    if (!pkg) return false
    process.stdout.write(
      `${pkg.name}/${pkg.version} ${process.platform}-${process.arch} node-${process.version}\n`,
    )
    return true
  }
  if (argv[argv.length - 1] !== '--help' || process.stdout.isTTY) return false
  const key = argv.slice(0, -1).join(' ')
  if (argv.slice(0, -1).some((a) => a.startsWith('-') || a.includes(' '))) return false
  const text = readJson<HelpCache>(new URL('help-cache.json', import.meta.url))?.help[key]
  if (text === undefined) return false
  process.stdout.write(text)
  return true
}
