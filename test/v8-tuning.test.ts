// cli/v8-tuning.ts: which inputs make the process compile without inlining. Each case runs
// in its own process, as the flag holds for the rest of a process.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, it} from 'node:test'

import {REPO} from './helpers/sysroot.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-compile-'))
after(() => rmSync(work, {recursive: true, force: true}))

/** What compileQuicklyForSmall(path, quickMax) returns in a fresh process. */
function decides(path: string, quickMax: number): boolean {
  const module = JSON.stringify(join(REPO, 'dist', 'cli', 'v8-tuning.js'))
  const script = `const {compileQuicklyForSmall} = await import(${module})
process.stdout.write(String(compileQuicklyForSmall(process.argv[1], ${quickMax})))`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, path], {encoding: 'utf8'})
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout) as boolean
}

it('turns inlining off for an input up to the limit, and only then', () => {
  const file = join(work, 'input')
  writeFileSync(file, Buffer.alloc(4096))
  assert.equal(decides(file, 4096), true)
  assert.equal(decides(file, 4095), false)
})

it('leaves stdin and a path it cannot stat alone', () => {
  assert.equal(decides('-', 1 << 30), false)
  assert.equal(decides(join(work, 'missing'), 1 << 30), false)
})
