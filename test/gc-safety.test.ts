// GC and deploy never overlap: gc started while a deploy is importing waits for the lock (or,
// with --lock-timeout 0, fails with one line), and never deletes an object the new deployment
// needs. Any second state-changing command with --lock-timeout 0 fails clearly and changes nothing.
import assert from 'node:assert/strict'
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, test} from 'node:test'

import {GcResult} from '../src/deploy/gc.js'
import {makeImage, TestImage} from './helpers/images.js'
import {
  cli,
  CliResult,
  defaultDigest,
  diffSnapshots,
  incomplete,
  makeSysroot,
  notOneClearError,
  schemaErrors,
  snapshot,
  startCli,
  Sysroot,
} from './helpers/sysroot.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-gc-safety-'))
// The big image's objects on another filesystem (when /dev/shm is one): copied, not linked, so
// the import takes long enough to start gc in the middle of it.
const shm = (() => {
  try {
    if (statSync('/dev/shm').dev !== statSync(work).dev) return mkdtempSync('/dev/shm/cfsboot-gc-safety-')
  } catch {
    // no /dev/shm
  }
  return null
})()
after(() => {
  rmSync(work, {recursive: true, force: true})
  if (shm) rmSync(shm, {recursive: true, force: true})
})

const BIG_OBJECTS = 2500
const BIG_OBJECT_SIZE = 32 * 1024

const blob = (seed: string, size: number): Buffer => {
  const unit = Buffer.from(`${seed}/`)
  return Buffer.concat(Array.from({length: Math.ceil(size / unit.length)}, () => unit)).subarray(0, size)
}

/** v1 (small), and v2: many big objects plus some v1 objects it shares. */
function images(tag: string): {v1: TestImage; v2: TestImage} {
  const shared: Record<string, Buffer> = {}
  for (let i = 0; i < 50; i++) shared[`/usr/share/shared/s${i}`] = blob(`shared-${i}`, 5000 + i)
  const v1Files: Record<string, Buffer> = {...shared}
  for (let i = 0; i < 50; i++) v1Files[`/usr/share/v1/f${i}`] = blob(`v1-${i}`, 5000 + i)
  const v2Files: Record<string, Buffer> = {...shared}
  for (let i = 0; i < BIG_OBJECTS; i++) v2Files[`/usr/share/v2/f${i}`] = blob(`v2-${i}`, BIG_OBJECT_SIZE + i)
  const d1 = join(work, `${tag}-v1`)
  const d2 = join(shm ?? work, `${tag}-v2`)
  mkdirSync(d1, {recursive: true})
  mkdirSync(d2, {recursive: true})
  return {
    v1: makeImage(d1, {version: '1', files: v1Files}),
    v2: makeImage(d2, {version: '2', files: v2Files}),
  }
}

const countObjects = (objects: string): number =>
  readdirSync(objects)
    .filter((f) => /^[0-9a-f]{2}$/.test(f))
    .reduce((n, f) => n + readdirSync(join(objects, f)).filter((o) => !o.startsWith('.')).length, 0)

/** Resolves once the store holds more than `base` objects (the deploy is importing). */
async function importing(s: Sysroot, base: number, deploy: Promise<CliResult>): Promise<void> {
  let finished = false
  void deploy.then(() => (finished = true))
  for (;;) {
    assert.ok(!finished, 'the deploy finished before gc could start: make the import bigger')
    if (countObjects(s.paths.objects) > base) return
    await new Promise((r) => setTimeout(r, 5))
  }
}

describe('gc while a deploy imports', () => {
  test('gc waits for the lock and deletes nothing the new deployment needs', async () => {
    // keep-rollback = 0: once v2 is the default, v1 is garbage.
    const s = await makeSysroot({parent: work, config: '[gc]\nkeep-rollback = 0\n'})
    const {v1, v2} = images('wait')
    assert.equal((await cli(s, ['deploy', v1.image, '--objects', v1.objects])).code, 0)
    const base = countObjects(s.paths.objects)

    const order: string[] = []
    const deploy = startCli(s, ['deploy', v2.image, '--objects', v2.objects, '--json']).done
    void deploy.then(() => order.push('deploy'))
    await importing(s, base, deploy)
    const atGcStart = countObjects(s.paths.objects)
    const gc = startCli(s, ['gc', '--json']).done
    void gc.then(() => order.push('gc'))
    const [d, g] = await Promise.all([deploy, gc])

    assert.equal(d.code, 0, d.stderr)
    assert.equal(g.code, 0, g.stderr)
    assert.deepEqual(order, ['deploy', 'gc'], 'gc finished before the deploy it should have waited for')
    const imported = (JSON.parse(d.stdout) as {objects: {imported: number}}).objects.imported
    assert.ok(atGcStart < base + imported, 'gc started after the import was over')
    const gcResult = JSON.parse(g.stdout) as GcResult
    assert.equal(schemaErrors('gc', gcResult), '')
    // gc saw the finished deploy: v2 is the default and kept, v1 dropped.
    assert.deepEqual(gcResult.deployments.kept, [v2.digest])
    assert.deepEqual(gcResult.deployments.removed, [v1.digest])
    assert.equal(await defaultDigest(s.paths), v2.digest)
    assert.deepEqual(await incomplete(s.paths, v2.digest), [])
    const fsck = await cli(s, ['fsck'])
    assert.equal(fsck.code, 0, fsck.stderr)
  })

  test('gc --lock-timeout 0 during a deploy fails with one clear line and deletes nothing', async () => {
    const s = await makeSysroot({parent: work, config: '[gc]\nkeep-rollback = 0\n'})
    const {v1, v2} = images('nowait')
    assert.equal((await cli(s, ['deploy', v1.image, '--objects', v1.objects])).code, 0)
    const base = countObjects(s.paths.objects)
    const v1Objects = v1.objectPaths.map((p) => join(s.paths.objects, p))

    const deploy = startCli(s, ['deploy', v2.image, '--objects', v2.objects]).done
    let deployDone = false
    void deploy.then(() => (deployDone = true))
    await importing(s, base, deploy)
    const g = await cli(s, ['gc', '--lock-timeout', '0', '--json'])
    const stillImporting = !deployDone
    assert.equal(notOneClearError(g, 1), '')
    assert.equal(JSON.parse(g.stdout).error.code, 'ELOCKED')
    assert.ok(stillImporting, 'the deploy finished before gc tried the lock')
    const d = await deploy
    assert.equal(d.code, 0, d.stderr)
    for (const p of v1Objects) assert.ok(existsSync(p), `gc deleted ${p}`)
    assert.deepEqual(await incomplete(s.paths, v2.digest), [])
    assert.deepEqual(await incomplete(s.paths, v1.digest), [])
    const fsck = await cli(s, ['fsck'])
    assert.equal(fsck.code, 0, fsck.stderr)
  })
})

test('any state-changing command with --lock-timeout 0 while the lock is held: one line, exit 1, nothing changed', async () => {
  const s = await makeSysroot({parent: work})
  const a = makeImage(join(work, 'lock-a'), {version: '1'})
  const b = makeImage(join(work, 'lock-b'), {version: '2', files: {'/usr/share/b': blob('b', 300)}})
  assert.equal((await cli(s, ['deploy', a.image, '--objects', a.objects])).code, 0)
  assert.equal((await cli(s, ['deploy', b.image, '--objects', b.objects])).code, 0)
  const c = makeImage(join(work, 'lock-c'), {version: '3', files: {'/usr/share/c': blob('c', 300)}})

  // Another process holds the lock (as a running cfsboot command would).
  const holder = spawn('flock', ['--exclusive', s.paths.lock, 'sleep', '120'], {
    stdio: 'ignore',
    detached: true,
  })
  try {
    while (spawnSync('flock', ['--nonblock', s.paths.lock, 'true']).status === 0) {
      await new Promise((r) => setTimeout(r, 10)) // until the holder has it
    }
    const before = snapshot(s.dir)
    for (const args of [
      ['deploy', c.image, '--objects', c.objects],
      ['rollback'],
      ['pin', '0'],
      ['unpin', '0'],
      ['undeploy', '1'],
      ['gc'],
      ['fsck', '--repair'],
      // fsck takes the lock even to check: objects would look missing while a deploy or gc runs.
      ['fsck'],
    ]) {
      const r = await cli(s, [...args, '--lock-timeout', '0', '--json'])
      assert.equal(notOneClearError(r, 1), '', args.join(' '))
      assert.equal(JSON.parse(r.stdout).error.code, 'ELOCKED', args.join(' '))
    }
    // Reading the state needs no lock.
    assert.equal((await cli(s, ['status'])).code, 0)
    assert.deepEqual(diffSnapshots(before, snapshot(s.dir)), [])
  } finally {
    try {
      process.kill(-holder.pid!, 'SIGKILL')
    } catch {
      // already gone
    }
  }
})
