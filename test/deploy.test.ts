// The deployment layer through the CLI, on real directories: deploy, status, rollback, pin,
// undeploy, gc, the /etc merge, boot entries, fsck, and bad input that must change nothing.
import assert from 'node:assert/strict'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join, relative} from 'node:path'
import {after, describe, test} from 'node:test'

import {Status} from '../src/deploy/status.js'
import {DeployResult} from '../src/deploy/deploy.js'
import {FsckResult} from '../src/deploy/fsck.js'
import {GcResult} from '../src/deploy/gc.js'
import {makeImage, TestImage} from './helpers/images.js'
import {
  cli,
  cliJson,
  defaultDigest,
  describeSysroot,
  diffSnapshots,
  errorLines,
  incomplete,
  makeSysroot,
  notOneClearError,
  schemaErrors,
  setBooted,
  snapshot,
  Sysroot,
} from './helpers/sysroot.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-deploy-test-'))
after(() => rmSync(work, {recursive: true, force: true}))

let serial = 0
const freshDir = (name: string): string => {
  const d = join(work, `${name}-${serial++}`)
  mkdirSync(d, {recursive: true})
  return d
}

/** A file of `size` bytes whose content is unique to `seed` (so each is its own object). */
const blob = (seed: string, size: number): Buffer => {
  const unit = Buffer.from(`${seed}:`)
  return Buffer.concat(Array.from({length: Math.ceil(size / unit.length)}, () => unit)).subarray(0, size)
}

/**
 * v1 and v2 with 200 objects each; v2 shares 190 with v1 (95 %) and brings 10 new ones: its
 * initramfs, its os-release and 8 files.
 */
function twoVersions(): {v1: TestImage; v2: TestImage; newInV2: string[]; newBytes: number} {
  const shared: Record<string, Buffer> = {}
  for (let i = 0; i < 189; i++) shared[`/usr/share/data/f${i}`] = blob(`shared-${i}`, 100 + i * 7)
  const v1Only: Record<string, Buffer> = {}
  for (let i = 189; i < 197; i++) v1Only[`/usr/share/data/f${i}`] = blob(`v1-${i}`, 100 + i)
  const v2Only: Record<string, Buffer> = {}
  for (let i = 0; i < 8; i++) v2Only[`/usr/share/data/g${i}`] = blob(`v2-${i}`, 2000 + i)
  const v1 = makeImage(freshDir('v1'), {version: '1', files: {...shared, ...v1Only}})
  const v2 = makeImage(freshDir('v2'), {version: '2', files: {...shared, ...v2Only}})
  const inV1 = new Set(v1.objectPaths)
  const newInV2 = v2.objectPaths.filter((p) => !inV1.has(p))
  const newBytes = newInV2.reduce((a, p) => a + readFileSync(join(v2.objects, p)).length, 0)
  return {v1, v2, newInV2, newBytes}
}

async function deployOk(s: Sysroot, img: TestImage, extra: string[] = []): Promise<DeployResult> {
  const {r, json} = await cliJson<DeployResult>(s, ['deploy', img.image, '--objects', img.objects, ...extra])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(schemaErrors('deploy', json), '')
  assert.equal(json.digest, img.digest)
  return json
}

async function statusOk(s: Sysroot): Promise<Status> {
  const {r, json} = await cliJson<Status>(s, ['status'])
  assert.equal(r.code, 0, r.stderr)
  assert.equal(schemaErrors('status', json), '')
  return json
}

async function fsckOk(s: Sysroot): Promise<FsckResult> {
  const {r, json} = await cliJson<FsckResult>(s, ['fsck'])
  assert.equal(schemaErrors('fsck', json), '')
  assert.equal(r.code, 0, `fsck: ${JSON.stringify(json.damage)} ${r.stderr}`)
  assert.equal(json.ok, true)
  return json
}

const deploymentJson = (s: Sysroot, digest: string): unknown =>
  JSON.parse(readFileSync(join(s.paths.deployments, digest, 'deployment.json'), 'utf8'))

describe('deploy, status, rollback, pin, undeploy', () => {
  const {v1, v2, newInV2, newBytes} = twoVersions()

  test('deploy v1: status shows it staged; its entry, kernel and deployment.json are in place', async () => {
    const s = await makeSysroot()
    const r = await deployOk(s, v1)
    assert.equal(r.existing, false)
    assert.equal(r.objects.referenced, v1.objectPaths.length)
    assert.equal(r.objects.imported, v1.objectPaths.length)
    assert.equal(r.generation, 1)

    const st = await statusOk(s)
    assert.equal(st.deployments.length, 1)
    const d = st.deployments[0]!
    assert.equal(d.digest, v1.digest)
    assert.equal(d.staged, true)
    assert.equal(d.booted, false)
    assert.equal(d.rollback, false)
    assert.equal(d.version, '1')
    assert.equal(d.entry, r.entry)

    assert.equal(schemaErrors('deployment', deploymentJson(s, v1.digest)), '')
    // The boot contract: the default entry names the digest, and its kernel files exist.
    const entryText = readFileSync(join(s.paths.entries, r.entry), 'utf8')
    const options = /^options (.*)$/m.exec(entryText)![1]!.split(' ')
    assert.ok(options.includes(`cfsboot.digest=${v1.digest}`), entryText)
    for (const key of ['linux', 'initrd']) {
      const file = new RegExp(`^${key} (.*)$`, 'm').exec(entryText)![1]!
      assert.ok(existsSync(join(s.paths.bootDir, file)), `${key} ${file} missing`)
    }
    const linux = /^linux (.*)$/m.exec(entryText)![1]!
    assert.equal(readFileSync(join(s.paths.bootDir, linux), 'utf8'), 'kernel 6.12.0-test '.repeat(40))
    assert.equal(await defaultDigest(s.paths), v1.digest)
    assert.deepEqual(await incomplete(s.paths, v1.digest), [])
    await fsckOk(s)
  })

  test('deploy v2 sharing 95 % of its objects copies only the new 5 %; rollback and back; pin/unpin', async () => {
    const s = await makeSysroot()
    await deployOk(s, v1)
    const r2 = await deployOk(s, v2)
    assert.equal(r2.objects.referenced, 200)
    assert.equal(newInV2.length, 10)
    assert.equal(r2.objects.imported, 10)
    assert.equal(r2.objects.present, 190)
    assert.equal(r2.objects.bytesImported, newBytes)
    assert.equal(r2.generation, 2)

    let st = await statusOk(s)
    assert.deepEqual(
      st.deployments.map((d) => [d.digest, d.staged, d.rollback]),
      [
        [v2.digest, true, false],
        [v1.digest, false, true],
      ],
    )
    assert.equal(await defaultDigest(s.paths), v2.digest)

    // rollback: v1 becomes the default; again: back to v2.
    let rb = await cliJson<{digest: string; previous: string}>(s, ['rollback'])
    assert.equal(rb.r.code, 0, rb.r.stderr)
    assert.deepEqual([rb.json.digest, rb.json.previous], [v1.digest, v2.digest])
    assert.equal(await defaultDigest(s.paths), v1.digest)
    st = await statusOk(s)
    assert.equal(st.deployments[0]!.digest, v1.digest)
    assert.equal(st.deployments[0]!.staged, true)
    rb = await cliJson(s, ['rollback'])
    assert.equal(rb.r.code, 0, rb.r.stderr)
    assert.equal(await defaultDigest(s.paths), v2.digest)

    // pin / unpin, by index and by digest prefix.
    let r = await cli(s, ['pin', '1'])
    assert.equal(r.code, 0, r.stderr)
    st = await statusOk(s)
    assert.equal(st.deployments.find((d) => d.digest === v1.digest)!.pinned, true)
    assert.equal((deploymentJson(s, v1.digest) as {pinned: boolean}).pinned, true)
    assert.equal(schemaErrors('deployment', deploymentJson(s, v1.digest)), '')
    r = await cli(s, ['unpin', v1.digest.slice(0, 10)])
    assert.equal(r.code, 0, r.stderr)
    st = await statusOk(s)
    assert.equal(st.deployments.find((d) => d.digest === v1.digest)!.pinned, false)

    // Deploying an image that is already deployed only makes it the default again.
    const again = await deployOk(s, v1)
    assert.equal(again.existing, true)
    assert.equal(again.objects.imported, 0)
    assert.equal(await defaultDigest(s.paths), v1.digest)
    for (const d of [v1, v2]) assert.deepEqual(await incomplete(s.paths, d.digest), [])
    await fsckOk(s)
  })

  test('undeploy refuses the booted deployment and changes nothing; removes another one', async () => {
    const s = await makeSysroot()
    await deployOk(s, v1)
    await deployOk(s, v2)
    setBooted(s, v1.digest)
    const st = await statusOk(s)
    assert.equal(st.booted, v1.digest)
    assert.equal(st.deployments.find((d) => d.digest === v1.digest)!.booted, true)

    const before = snapshot(s.dir)
    const r = await cli(s, ['undeploy', v1.digest.slice(0, 12)])
    assert.equal(notOneClearError(r, 1), '')
    assert.match(r.stderr, /booted/)
    assert.deepEqual(diffSnapshots(before, snapshot(s.dir)), [])

    // The other one can go (the booted one remains bootable).
    setBooted(s, v1.digest)
    const ok = await cli(s, ['undeploy', v2.digest.slice(0, 12)])
    assert.equal(ok.code, 0, ok.stderr)
    const after = await statusOk(s)
    assert.deepEqual(
      after.deployments.map((d) => d.digest),
      [v1.digest],
    )
    assert.equal(await defaultDigest(s.paths), v1.digest)
    await fsckOk(s)
  })
})

describe('gc', () => {
  test('frees objects only when the last deployment using them is dropped', async () => {
    // keep-rollback = 0: only the default, the booted and pinned deployments are kept.
    const s = await makeSysroot({config: '[gc]\nkeep-rollback = 0\n'})
    const f = (seed: string): Buffer => blob(seed, 500)
    const A = {'/usr/share/a': f('A')}
    const B = {'/usr/share/b': f('B')}
    const C = {'/usr/share/c': f('C')}
    const S = {'/usr/share/s': f('S')} // v1 + v2
    const T = {'/usr/share/t': f('T')} // v2 + v3
    const v1 = makeImage(freshDir('g1'), {version: '1', files: {...A, ...S}})
    const v2 = makeImage(freshDir('g2'), {version: '2', files: {...B, ...S, ...T}})
    const v3 = makeImage(freshDir('g3'), {version: '3', files: {...C, ...T}})
    const obj = (img: TestImage, path: string): string => {
      const node = img.objectPaths.find((p) => readFileSync(join(img.objects, p)).equals(f(path)))
      assert.ok(node, path)
      return join(s.paths.objects, node)
    }
    await deployOk(s, v1)
    await deployOk(s, v2)
    await deployOk(s, v3)
    const [a, b, c, sh, t] = [obj(v1, 'A'), obj(v2, 'B'), obj(v3, 'C'), obj(v1, 'S'), obj(v2, 'T')]
    let r = await cli(s, ['pin', v1.digest.slice(0, 8)])
    assert.equal(r.code, 0, r.stderr)
    r = await cli(s, ['pin', v2.digest.slice(0, 8)])
    assert.equal(r.code, 0, r.stderr)
    // Layer records of container builds in this store (src/store/layer-records.ts): one naming
    // B (v2 only), one naming A and S (v1), one naming T (v2 and v3), and two unreadable.
    const layers = join(s.paths.objects, '.layers')
    mkdirSync(layers)
    const digestOf = (p: string): string => relative(s.paths.objects, p).replace('/', '')
    const record = (name: string, ...objects: string[]): string => {
      const entries = objects.map((o, i) => ({path: `/f${i}`, digest: digestOf(o)}))
      entries.push({path: '/inline'} as (typeof entries)[number])
      writeFileSync(join(layers, name), JSON.stringify({version: 1, diffId: 'sha256:x', entries}))
      return join(layers, name)
    }
    const [recB, recAS, recT] = [record('b.json', b), record('as.json', a, sh), record('t.json', t)]
    writeFileSync(join(layers, 'broken.json'), '{')
    writeFileSync(join(layers, 'null-entry.json'), '{"version":1,"diffId":"sha256:y","entries":[null]}')

    // Everything pinned or default: gc removes nothing.
    let g = await cliJson<GcResult>(s, ['gc'])
    assert.equal(g.r.code, 0, g.r.stderr)
    assert.equal(schemaErrors('gc', g.json), '')
    assert.deepEqual([g.json.deployments.removed, g.json.objects], [[], 0])
    for (const p of [a, b, c, sh, t]) assert.ok(existsSync(p))
    // Only the unreadable records go: every object the others name is kept.
    assert.equal(g.json.layerRecords, 2)
    for (const p of [recB, recAS, recT]) assert.ok(existsSync(p))

    // Drop v2: its own object B goes; S (v1 still) and T (v3 still) stay.
    await cli(s, ['unpin', v2.digest.slice(0, 8)])
    const dry = await cliJson<GcResult>(s, ['gc', '--dry-run'])
    assert.equal(schemaErrors('gc', dry.json), '')
    assert.equal(dry.json.dryRun, true)
    assert.ok(existsSync(b), 'dry run deleted')
    g = await cliJson<GcResult>(s, ['gc'])
    assert.equal(g.r.code, 0, g.r.stderr)
    assert.deepEqual(g.json.deployments.removed, [v2.digest])
    assert.equal(g.json.objects, dry.json.objects)
    assert.ok(g.json.objects >= 1)
    assert.ok(!existsSync(b), 'v2-only object survived')
    assert.deepEqual([dry.json.layerRecords, g.json.layerRecords], [1, 1])
    assert.ok(!existsSync(recB), "the record naming v2's own object survived")
    for (const p of [recAS, recT]) assert.ok(existsSync(p), `${p} removed too early`)
    for (const p of [a, c, sh, t]) assert.ok(existsSync(p), `${p} removed too early`)
    assert.ok(!existsSync(join(s.paths.images, v2.digest)))
    assert.ok(!existsSync(join(s.paths.deployments, v2.digest)))
    for (const d of [v1, v3]) assert.deepEqual(await incomplete(s.paths, d.digest), [])
    await fsckOk(s)

    // Drop v1: A and S go (S's last user), T and C stay with v3.
    await cli(s, ['unpin', v1.digest.slice(0, 8)])
    g = await cliJson<GcResult>(s, ['gc'])
    assert.equal(g.r.code, 0, g.r.stderr)
    assert.deepEqual(g.json.deployments.removed, [v1.digest])
    for (const p of [a, sh]) assert.ok(!existsSync(p), `${p} survived its last user`)
    for (const p of [c, t]) assert.ok(existsSync(p))
    assert.equal(g.json.layerRecords, 1)
    assert.deepEqual([existsSync(recAS), existsSync(recT)], [false, true])
    assert.deepEqual(await incomplete(s.paths, v3.digest), [])
    const st = await statusOk(s)
    assert.deepEqual(
      st.deployments.map((d) => d.digest),
      [v3.digest],
    )
    await fsckOk(s)
  })

  test('keeps the booted deployment and one rollback by default', async () => {
    const s = await makeSysroot()
    const imgs = ['1', '2', '3', '4'].map((v) =>
      makeImage(freshDir('k' + v), {version: v, files: {[`/usr/share/own-${v}`]: blob(v, 300)}}),
    )
    for (const img of imgs) await deployOk(s, img)
    setBooted(s, imgs[0]!.digest)
    const g = await cliJson<GcResult>(s, ['gc'])
    assert.equal(g.r.code, 0, g.r.stderr)
    // Kept: 4 (default), 3 (rollback), 1 (booted). Dropped: 2.
    assert.deepEqual(g.json.deployments.removed, [imgs[1]!.digest])
    assert.deepEqual(new Set(g.json.deployments.kept), new Set([0, 2, 3].map((i) => imgs[i]!.digest)))
    for (const i of [0, 2, 3]) assert.deepEqual(await incomplete(s.paths, imgs[i]!.digest), [])
    await fsckOk(s)
  })
})

describe('/etc', () => {
  test('the administrator’s changes carry to the next deployment; a conflicting change is reported', async () => {
    const s = await makeSysroot()
    const v1 = makeImage(freshDir('e1'), {version: '1', files: {'/etc/motd': 'welcome\n'}})
    const v2 = makeImage(freshDir('e2'), {
      version: '2',
      files: {'/etc/hostname': 'cfsboot-v2\n', '/etc/motd': 'welcome\n'},
    })
    await deployOk(s, v1)
    // The administrator changes /etc/hostname (which v2 changes too) and adds a file.
    const upper = join(s.paths.deployments, v1.digest, 'etc', 'upper')
    mkdirSync(join(upper, 'ssh'), {recursive: true})
    writeFileSync(join(upper, 'hostname'), 'my-machine\n')
    writeFileSync(join(upper, 'ssh', 'sshd_config.local'), 'PermitRootLogin no\n')

    const r = await deployOk(s, v2)
    assert.equal(r.etc.mergedFrom, v1.digest)
    assert.equal(r.etc.carried, 2)
    assert.deepEqual(r.etc.conflicts, ['/etc/hostname'])
    const upper2 = join(s.paths.deployments, v2.digest, 'etc', 'upper')
    assert.equal(readFileSync(join(upper2, 'hostname'), 'utf8'), 'my-machine\n')
    assert.equal(readFileSync(join(upper2, 'ssh', 'sshd_config.local'), 'utf8'), 'PermitRootLogin no\n')
    // The human output warns about the conflict too.
    const st = await statusOk(s)
    assert.deepEqual(st.deployments[0]!.etcConflicts, ['/etc/hostname'])
    assert.equal(schemaErrors('deployment', deploymentJson(s, v2.digest)), '')

    // A change the image did not touch carries without a conflict.
    const v3 = makeImage(freshDir('e3'), {
      version: '3',
      files: {'/etc/hostname': 'cfsboot-v2\n', '/etc/motd': 'welcome\n'},
    })
    const r3 = await deployOk(s, v3)
    assert.equal(r3.etc.mergedFrom, v2.digest)
    assert.deepEqual(r3.etc.conflicts, [])
    assert.equal(r3.etc.carried, 2)
  })

  test('the booted deployment’s /etc is the one carried forward', async () => {
    const s = await makeSysroot()
    const v1 = makeImage(freshDir('b1'), {version: '1'})
    const v2 = makeImage(freshDir('b2'), {version: '2', files: {'/usr/share/x': blob('x', 200)}})
    const v3 = makeImage(freshDir('b3'), {version: '3', files: {'/usr/share/y': blob('y', 200)}})
    await deployOk(s, v1)
    await deployOk(s, v2)
    writeFileSync(join(s.paths.deployments, v1.digest, 'etc', 'upper', 'booted-change'), 'yes\n')
    setBooted(s, v1.digest)
    const r = await deployOk(s, v3)
    assert.equal(r.etc.mergedFrom, v1.digest)
    assert.ok(existsSync(join(s.paths.deployments, v3.digest, 'etc', 'upper', 'booted-change')))
  })
})

describe('bad input: one clear line, the documented exit code, nothing changed on disk', () => {
  const {v1, v2} = twoVersions()

  /** A sysroot with v1 deployed; runs `args`, checks the error and that nothing changed. */
  async function refuses(
    args: (s: Sysroot) => string[],
    code: number,
    pattern?: RegExp | string,
  ): Promise<void> {
    const s = await makeSysroot()
    await deployOk(s, v1)
    const before = snapshot(s.dir)
    const r = await cli(s, args(s))
    assert.equal(notOneClearError(r, code), '')
    // A string is the error code that `--json` reports.
    if (typeof pattern === 'string') assert.equal(JSON.parse(r.stdout).error.code, pattern)
    else if (pattern) assert.match(errorLines(r.stderr).join(' '), pattern)
    assert.deepEqual(diffSnapshots(before, snapshot(s.dir)), [])
    assert.deepEqual(await incomplete(s.paths, v1.digest), [])
    assert.equal(await defaultDigest(s.paths), v1.digest)
  }

  const copyOf = (img: TestImage, name: string): string => {
    const p = join(freshDir(name), 'image.cfs')
    writeFileSync(p, readFileSync(img.image))
    return p
  }

  test('a corrupt image (bit flip in the superblock): exit 3', async () => {
    const bad = copyOf(v2, 'flip')
    const bytes = readFileSync(bad)
    bytes[1024] ^= 0x01 // the EROFS superblock magic
    writeFileSync(bad, bytes)
    await refuses(() => ['deploy', bad, '--objects', v2.objects], 3)
  })

  test('a truncated image: exit 3', async () => {
    const bad = copyOf(v2, 'trunc')
    truncateSync(bad, Math.floor(readFileSync(bad).length / 2))
    await refuses(() => ['deploy', bad, '--objects', v2.objects], 3)
  })

  test('an empty image and a missing image file: exit 3', async () => {
    const empty = join(freshDir('empty'), 'image.cfs')
    writeFileSync(empty, '')
    await refuses(() => ['deploy', empty, '--objects', v2.objects], 3)
    await refuses(() => ['deploy', join(work, 'no-such-image.cfs'), '--objects', v2.objects], 3)
  })

  test('a missing object: exit 6, naming it', async () => {
    const objs = freshDir('missing')
    const {execFileSync} = await import('node:child_process')
    execFileSync('cp', ['-a', `${v2.objects}/.`, objs])
    const gone = v2.objectPaths.find((p) => !v1.objectPaths.includes(p))!
    rmSync(join(objs, gone))
    await refuses(() => ['deploy', v2.image, '--objects', objs], 6, new RegExp(gone.slice(0, 20)))
  })

  test('no --objects when the store lacks objects: exit 6', async () => {
    await refuses(() => ['deploy', v2.image], 6, /--objects/)
  })

  test('an object with the wrong content in --objects: exit 4, naming it', async () => {
    const objs = freshDir('wrong')
    const {execFileSync} = await import('node:child_process')
    execFileSync('cp', ['-a', `${v2.objects}/.`, objs])
    const bad = v2.objectPaths.find((p) => !v1.objectPaths.includes(p))!
    const content = readFileSync(join(objs, bad))
    content[content.length >> 1] ^= 0x20
    rmSync(join(objs, bad))
    writeFileSync(join(objs, bad), content)
    await refuses(() => ['deploy', v2.image, '--objects', objs], 4, new RegExp(bad.slice(0, 20)))
  })

  test('a sysroot that is not a cfsboot system: every command exits 3 and writes nothing', async () => {
    const dir = freshDir('not-cfsboot')
    mkdirSync(join(dir, 'sysroot', 'var'), {recursive: true})
    writeFileSync(join(dir, 'sysroot', 'hello'), 'not a cfsboot system\n')
    const s = describeSysroot(dir)
    const before = snapshot(dir)
    for (const args of [
      ['deploy', v1.image, '--objects', v1.objects],
      ['status'],
      ['rollback'],
      ['pin', '0'],
      ['unpin', '0'],
      ['undeploy', '0'],
      ['gc'],
      ['fsck'],
      ['fsck', '--repair'],
    ]) {
      const r = await cli(s, args)
      assert.equal(notOneClearError(r, 3), '', args.join(' '))
      assert.match(errorLines(r.stderr).join(' '), /not a cfsboot system/, args.join(' '))
    }
    assert.deepEqual(diffSnapshots(before, snapshot(dir)), [])
  })

  test('rollback with nothing to roll back to, pin of an unknown deployment: one line, nothing changed', async () => {
    await refuses(() => ['rollback', '--json'], 1, 'ENOROLLBACK')
    await refuses(() => ['pin', '7'], 3)
    await refuses(() => ['undeploy', 'zzzz'], 3)
    await refuses(() => ['undeploy', '0', '--json'], 1, 'ELAST')
  })

  test('a broken cfsboot.conf: exit 3', async () => {
    const s = await makeSysroot({config: '[gc]\nkeep-rollback = many\n'})
    const before = snapshot(s.dir)
    const r = await cli(s, ['gc'])
    assert.equal(notOneClearError(r, 3), '')
    assert.deepEqual(diffSnapshots(before, snapshot(s.dir)), [])
  })
})

describe('fsck', () => {
  test('a corrupted object: exit 6 naming it; --repair removes it; deploy --objects restores it', async () => {
    const {v1} = twoVersions()
    const s = await makeSysroot()
    // Copy the objects first so the store does not share inodes with the source dir.
    const objs = freshDir('fsck-src')
    const {execFileSync} = await import('node:child_process')
    execFileSync('cp', ['-r', `${v1.objects}/.`, objs])
    await deployOk(s, {...v1, objects: objs})
    const victim = v1.objectPaths[5]!
    const file = join(s.paths.objects, victim)
    const content = readFileSync(file)
    content[0] ^= 0xff
    rmSync(file)
    writeFileSync(file, content)

    let r = await cliJson<FsckResult>(s, ['fsck'])
    assert.equal(r.r.code, 6)
    assert.equal(schemaErrors('fsck', r.json), '')
    assert.equal(r.json.ok, false)
    assert.equal(r.json.objects.corrupt, 1)
    assert.ok(r.json.damage.some((d) => d.kind === 'object' && d.path === victim))
    const human = await cli(s, ['fsck'])
    assert.equal(human.code, 6)
    assert.match(human.stderr, new RegExp(victim))

    r = await cliJson<FsckResult>(s, ['fsck', '--repair'])
    assert.ok(r.json.damage.some((d) => d.kind === 'object' && d.path === victim && d.repaired))
    assert.ok(!existsSync(file), 'corrupt object not removed')
    // The deployment now lacks it: still damage, until the object is fetched again.
    assert.equal(r.r.code, 6)
    assert.ok(r.json.damage.some((d) => d.kind === 'deployment' && d.path === v1.digest))

    const again = await deployOk(s, {...v1, objects: objs})
    assert.equal(again.objects.imported, 1)
    assert.deepEqual(await incomplete(s.paths, v1.digest), [])
    await fsckOk(s)
  })

  test('a missing kernel file is damage', async () => {
    const v1 = makeImage(freshDir('kern'), {version: '1'})
    const s = await makeSysroot()
    const r = await deployOk(s, v1)
    rmSync(join(s.paths.bootDir, r.kernel.dir, 'initramfs.img'))
    const f = await cliJson<FsckResult>(s, ['fsck'])
    assert.equal(f.r.code, 6)
    assert.ok(f.json.damage.some((d) => d.kind === 'kernel' && d.path.endsWith('initramfs.img')))
  })

  test('a missing image and a dangling entry are damage; leftovers of interrupted commands are notes', async () => {
    const v1 = makeImage(freshDir('img1'), {version: '1'})
    const v2 = makeImage(freshDir('img2'), {version: '2'})
    const s = await makeSysroot()
    await deployOk(s, v1)
    await deployOk(s, v2)
    // Leftovers: a staging dir, a temporary object, an unreferenced object: notes only.
    mkdirSync(join(s.paths.staging, 'abc'), {recursive: true})
    mkdirSync(join(s.paths.objects, '00'), {recursive: true})
    writeFileSync(join(s.paths.objects, '00', '.tmp-' + '0'.repeat(62) + '-123456'), 'partial')
    const ok = await fsckOk(s)
    assert.ok(ok.notes.some((n) => /staging/.test(n)))

    rmSync(join(s.paths.images, v1.digest))
    rmSync(join(s.paths.deployments, v2.digest), {recursive: true})
    const f = await cliJson<FsckResult>(s, ['fsck'])
    assert.equal(f.r.code, 6)
    assert.ok(f.json.damage.some((d) => d.kind === 'image' && d.path.endsWith(v1.digest)))
    assert.ok(f.json.damage.some((d) => d.kind === 'entry'))
  })
})

test('an older duplicate of a deployment entry (a rename cut short) is a note for fsck and removed by gc', async () => {
  const s = await makeSysroot()
  const v1 = makeImage(freshDir('dup1'), {version: '1'})
  await deployOk(s, v1)
  const [name] = readdirSync(s.paths.entries).filter((n) => n.endsWith('.conf'))
  assert.ok(name)
  // The same deployment under its counter-less name with a lower version: what a crash between
  // writing the renamed entry and removing the old file leaves.
  const text = readFileSync(join(s.paths.entries, name), 'utf8').replace(/^version .*$/m, 'version 0')
  const dup = name.includes('+') ? name.replace(/\+[\d-]+\.conf$/, '.conf') : name.replace('.conf', '+1.conf')
  writeFileSync(join(s.paths.entries, dup), text)
  const fsck = await cliJson<FsckResult>(s, ['fsck'])
  assert.equal(fsck.r.code, 0, fsck.r.stderr)
  assert.ok(
    fsck.json.notes.some((n) => n.includes('older duplicate')),
    fsck.json.notes.join('; '),
  )
  const g = await cliJson<GcResult>(s, ['gc'])
  assert.equal(g.r.code, 0, g.r.stderr)
  assert.deepEqual(readdirSync(s.paths.entries).sort(), [name])
})
