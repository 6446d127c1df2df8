// Publish to a static directory served by Debian's nginx on 127.0.0.1; devices install v1, then
// upgrade to a 5 % update and fetch only its new objects (counted from nginx's access log too).
import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {GcResult} from '../src/deploy/gc.js'
import {PullResult} from '../src/remote/pull.js'
import {
  cli,
  cliJson,
  defaultDigest,
  diffSnapshots,
  incomplete,
  makeSysroot,
  notOneClearError,
  schemaErrors,
  snapshot,
  Sysroot,
} from './helpers/sysroot.js'
import {
  deviceConfig,
  keypair,
  publishOk,
  storeProblems,
  twoVersions,
  TwoVersions,
} from './helpers/releases.js'
import {Server, startNginx} from './helpers/servers.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-remote-static-'))
after(() => rmSync(work, {recursive: true, force: true}))

describe('static repository over nginx', () => {
  let nginx: Server
  let rel: TwoVersions
  let keys: {key: string; pub: string}
  let other: {key: string; pub: string}
  const repo = join(work, 'repo')
  const accessLog = join(work, 'nginx', 'nginx-access.log')

  before(async () => {
    rel = twoVersions(join(work, 'images'), {count: 200, changed: 8})
    keys = await keypair(join(work, 'release'))
    other = await keypair(join(work, 'other'))
    const p = await publishOk(['--objects', rel.v1.objects, '--to', repo, '--key', keys.key, rel.v1.image])
    assert.equal(schemaErrors('publish', p), '')
    assert.equal((p.objects as {uploaded: number}).uploaded, rel.v1.objectPaths.length)
    nginx = await startNginx(join(work, 'nginx'), repo)
  })
  after(async () => nginx?.stop())

  const device = async (pub = keys.pub, extra = ''): Promise<Sysroot> => {
    const s = await makeSysroot({parent: work})
    writeFileSync(s.config, deviceConfig(nginx.url, pub, extra))
    return s
  }
  const logLines = (): string[] =>
    existsSync(accessLog) ? readFileSync(accessLog, 'utf8').split('\n').filter(Boolean) : []

  test('install v1, then a 5 % update fetches only its new objects', async () => {
    const s = await device()
    const check = await cliJson<PullResult>(s, ['upgrade', '--check'])
    assert.equal(check.r.code, 0, check.r.stderr)
    assert.equal(schemaErrors('pull', check.json), '')
    assert.equal(check.json.updateAvailable, true)
    assert.equal(check.json.objects.missing, rel.v1.objectPaths.length)

    const first = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(first.r.code, 0, first.r.stderr)
    assert.equal(schemaErrors('pull', first.json), '')
    assert.equal(schemaErrors('deploy', first.json.deploy), '')
    assert.equal(first.json.digest, rel.v1.digest)
    assert.equal(first.json.objects.downloaded, rel.v1.objectPaths.length)
    assert.deepEqual(await incomplete(s.paths, rel.v1.digest), [])
    assert.equal(await defaultDigest(s.paths), rel.v1.digest)
    assert.ok(!existsSync(join(s.paths.composefs, 'downloads', rel.v1.digest)), 'the download is cleaned up')

    // Up to date: nothing is downloaded.
    const again = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(again.json.updateAvailable, false)
    assert.equal(again.json.transfer.requests, 1)

    const p2 = await publishOk(['--objects', rel.v2.objects, '--to', repo, '--key', keys.key, rel.v2.image])
    assert.equal(
      (p2.objects as {uploaded: number}).uploaded,
      rel.newInV2.length,
      'publish copies only new objects',
    )

    const before = logLines().length
    const up = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(up.r.code, 0, up.r.stderr)
    assert.equal(up.json.digest, rel.v2.digest)
    assert.equal(up.json.objects.downloaded, rel.newInV2.length)
    assert.equal(up.json.objects.bytesDownloaded, rel.newBytes)
    const imageBytes = statSync(rel.v2.image).size
    const indexBytes = statSync(join(repo, 'releases', 'stable.json')).size
    // index + image + one request per new object, and bytes within 5 % of the new objects' bytes.
    assert.equal(up.json.transfer.requests, 2 + rel.newInV2.length)
    assert.ok(
      up.json.transfer.bytes <= 1.05 * rel.newBytes + indexBytes + imageBytes,
      `${up.json.transfer.bytes} bytes`,
    )
    const served = logLines().slice(before)
    assert.equal(served.filter((l) => l.includes('GET /objects/')).length, rel.newInV2.length)
    assert.deepEqual(
      served
        .filter((l) => l.includes('GET /objects/'))
        .map((l) => /GET \/objects\/(\S+)/.exec(l)![1])
        .sort(),
      [...rel.newInV2].sort(),
    )
    console.log(
      `# 5 % update: ${up.json.objects.downloaded} objects, ${up.json.transfer.bytes} bytes in ${up.json.transfer.requests} requests; new objects ${rel.newBytes} bytes, index ${indexBytes}, image ${imageBytes}`,
    )
    assert.deepEqual(await incomplete(s.paths, rel.v2.digest), [])
    assert.deepEqual(await incomplete(s.paths, rel.v1.digest), [])
    assert.equal(await defaultDigest(s.paths), rel.v2.digest)
    assert.deepEqual(storeProblems(s.paths.objects), [])
  })

  test('download-only stages objects that gc keeps; from-downloaded deploys without the network', async () => {
    const s = await device()
    // v2 is the channel's release now (the previous test published it).
    const dl = await cliJson<PullResult>(s, ['upgrade', '--download-only'])
    assert.equal(dl.r.code, 0, dl.r.stderr)
    assert.equal(dl.json.deploy, null)
    const gc = await cliJson<GcResult>(s, ['gc'])
    assert.equal(gc.r.code, 0, gc.r.stderr)
    assert.equal(gc.json.objects, 0, 'gc keeps the staged download')
    await nginx.stop()
    try {
      const dep = await cliJson<PullResult>(s, ['upgrade', '--from-downloaded'])
      assert.equal(dep.r.code, 0, dep.r.stderr)
      assert.equal(schemaErrors('pull', dep.json), '')
      assert.equal(dep.json.deploy!.digest, rel.v2.digest)
      assert.deepEqual(await incomplete(s.paths, rel.v2.digest), [])
    } finally {
      nginx = await startNginx(join(work, 'nginx'), repo)
      writeFileSync(s.config, deviceConfig(nginx.url, keys.pub))
    }
  })

  test('an index signed by another key is refused before anything else is fetched', async () => {
    const s = await device(other.pub)
    const snap = snapshot(s.sysroot)
    const before = logLines().length
    const r = await cli(s, ['upgrade'])
    assert.equal(notOneClearError(r, 4), '')
    assert.deepEqual(diffSnapshots(snap, snapshot(s.sysroot)), [])
    assert.equal(logLines().slice(before).length, 1, 'only the index was requested')
  })

  test('without trusted keys, upgrade refuses (exit 3)', async () => {
    const s = await makeSysroot({parent: work})
    writeFileSync(s.config, `[remote]\nurl = ${nginx.url}\n`)
    assert.equal(notOneClearError(await cli(s, ['upgrade']), 3), '')
  })
})
