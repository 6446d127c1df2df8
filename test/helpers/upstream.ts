// Upstream composefs's test inputs (../shared/testdata/composefs): dumps with the sha256 of the
// image upstream's mkcomposefs writes for them.
import {existsSync, readdirSync, readFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {gunzipSync} from 'node:zlib'

const here = dirname(fileURLToPath(import.meta.url))
/** The project root (dist/test/helpers → three levels up). */
export const projectRoot = resolve(here, '..', '..', '..')
export const upstreamDir = resolve(projectRoot, '..', 'shared', 'testdata', 'composefs')

export interface UpstreamCase {
  name: string
  dump: Buffer
  /** Expected sha256 of the image (absent for should-fail cases). */
  sha256?: string
  version?: number
}

export function upstreamCases(): UpstreamCase[] {
  if (!existsSync(upstreamDir)) return []
  const cases: UpstreamCase[] = []
  for (const f of readdirSync(upstreamDir).sort()) {
    if (!/\.dump(\.gz)?$/.test(f)) continue
    const p = join(upstreamDir, f)
    let dump = readFileSync(p)
    if (f.endsWith('.gz')) dump = gunzipSync(dump)
    const c: UpstreamCase = {name: f, dump}
    if (existsSync(p + '.sha256')) c.sha256 = readFileSync(p + '.sha256', 'utf8').trim()
    if (existsSync(p + '.version')) c.version = Number(readFileSync(p + '.version', 'utf8').trim())
    cases.push(c)
  }
  return cases
}
