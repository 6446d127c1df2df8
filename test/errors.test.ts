// The error codes are listed once in src/errors.ts and once for users in docs/exit-codes.md:
// the two tables must say the same, and every code must be one the code can raise.

import assert from 'node:assert/strict'
import {readdirSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'
import {test} from 'node:test'

import {ERROR_CODES, ExitCode} from '../src/errors.js'

const ROOT = join(import.meta.dirname, '..', '..')

/** The rows of the Markdown table whose header starts with `header`, as cell arrays. */
function tableRows(markdown: string, header: string): string[][] {
  const lines = markdown.split('\n')
  const start = lines.findIndex((l) => l.startsWith(`| ${header} |`))
  assert.ok(start >= 0, `docs/exit-codes.md has a table headed "${header}"`)
  const rows: string[][] = []
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    )
  }
  return rows
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : []
  })
}

const doc = readFileSync(join(ROOT, 'docs', 'exit-codes.md'), 'utf8')

test('docs/exit-codes.md lists every exit code of ExitCode, and success', () => {
  const documented = tableRows(doc, 'code').map((r) => Number(r[0]))
  assert.deepEqual(documented.sort(), [0, ...Object.values(ExitCode)].sort())
})

test('docs/exit-codes.md lists every error code with its exit code, and no other', () => {
  const documented = Object.fromEntries(
    tableRows(doc, 'error code').map((r) => [r[0]!.replace(/`/g, ''), Number(r[1])]),
  )
  const table = Object.fromEntries(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.exit]))
  assert.deepEqual(documented, table)
})

test('every error code is raised somewhere (no dead codes)', () => {
  const text = ['src', 'cli', 'commands']
    .flatMap((d) => sources(join(ROOT, d)))
    .filter((f) => !f.endsWith(join('src', 'errors.ts')))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n')
  const unused = Object.keys(ERROR_CODES).filter((code) => !text.includes(`'${code}'`))
  // The four classes in src/errors.ts raise these codes; their users name the class.
  const byClass = new Set(['EINVALID', 'EDIGEST', 'EUNSUPPORTED', 'EDAMAGE'])
  assert.deepEqual(
    unused.filter((c) => !byClass.has(c)),
    [],
  )
})
