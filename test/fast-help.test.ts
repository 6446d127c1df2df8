// `--help` and `--version` answered before oclif loads (cli/fast-help.ts) must print exactly
// what oclif prints: every cached help text and the version line are compared byte for byte with
// oclif's own answer (CFSBOOT_NO_FAST_HELP=1 sends the same command through oclif).
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {REPO, RUN_JS} from './helpers/sysroot.js'

const cache = JSON.parse(readFileSync(join(REPO, 'dist', 'cli', 'help-cache.json'), 'utf8')) as {
  help: Record<string, string>
}

function run(argv: string[], env: Record<string, string> = {}): {stdout: Buffer; status: number | null} {
  const all: NodeJS.ProcessEnv = {...process.env, ...env}
  delete all.OCLIF_COLUMNS
  delete all.FORCE_COLOR
  const r = spawnSync(process.execPath, [RUN_JS, ...argv], {env: all, encoding: 'buffer'})
  return {stdout: r.stdout, status: r.status}
}

test('the help cache covers the root, every topic and every command', () => {
  const manifest = JSON.parse(readFileSync(join(REPO, 'oclif.manifest.json'), 'utf8')) as {
    commands: Record<string, unknown>
  }
  const keys = new Set(Object.keys(cache.help))
  assert.ok(keys.has(''))
  for (const id of Object.keys(manifest.commands)) assert.ok(keys.has(id.replaceAll(':', ' ')), id)
})

test('every cached --help equals oclif rendering, byte for byte', () => {
  for (const key of Object.keys(cache.help)) {
    const argv = [...(key ? key.split(' ') : []), '--help']
    const fast = run(argv)
    const oclif = run(argv, {CFSBOOT_NO_FAST_HELP: '1'})
    assert.equal(fast.status, 0, key)
    assert.equal(oclif.status, 0, key)
    assert.ok(fast.stdout.length > 0, key)
    assert.ok(fast.stdout.equals(oclif.stdout), `help of "${key}" differs from oclif's`)
  }
})

test('--version equals oclif', () => {
  const fast = run(['--version'])
  const oclif = run(['--version'], {CFSBOOT_NO_FAST_HELP: '1'})
  assert.equal(fast.status, 0)
  assert.match(fast.stdout.toString(), /^cfsboot\/\d+\.\d+\.\d+ \S+-\S+ node-v\d+/)
  assert.ok(fast.stdout.equals(oclif.stdout))
})

test('bin/cfsboot, also through a symlink as npm installs it, answers as bin/run.js does', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfsboot-bin-'))
  t.after(() => rmSync(dir, {recursive: true, force: true}))
  const link = join(dir, 'cfsboot')
  symlinkSync(join(REPO, 'bin', 'cfsboot'), link)
  const expected = run(['build', '--help'])
  const r = spawnSync(link, ['build', '--help'], {
    encoding: 'buffer',
    env: {...process.env, NODE_EXTRA_CA_CERTS: '/nonexistent'},
  })
  assert.equal(r.status, 0, r.stderr.toString())
  assert.ok(r.stdout.equals(expected.stdout))
  // Node warns about an unreadable NODE_EXTRA_CA_CERTS at start-up; the launcher took it away.
  assert.equal(r.stderr.toString(), '')
})

test('answerWithoutOclif takes the short cut only for the exact forms', async () => {
  const {answerWithoutOclif} = await import('../cli/fast-help.js')
  const write = process.stdout.write
  let out = ''
  process.stdout.write = ((chunk: string) => ((out += chunk), true)) as typeof process.stdout.write
  const isTTY = process.stdout.isTTY
  try {
    Object.defineProperty(process.stdout, 'isTTY', {value: false, configurable: true})
    assert.equal(answerWithoutOclif(['image', 'dump', '--help']), true)
    assert.equal(out, cache.help['image dump'])
    assert.equal(answerWithoutOclif(['image', 'dump', 'x.cfs', '--help']), false)
    assert.equal(answerWithoutOclif(['build', '-o', '--help']), false)
    assert.equal(answerWithoutOclif(['--version', 'build']), false)
    Object.defineProperty(process.stdout, 'isTTY', {value: true, configurable: true})
    assert.equal(answerWithoutOclif(['build', '--help']), false, 'a terminal gets oclif (width, colour)')
  } finally {
    process.stdout.write = write
    Object.defineProperty(process.stdout, 'isTTY', {value: isTTY, configurable: true})
  }
})
