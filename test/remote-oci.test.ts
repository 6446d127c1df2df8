// Releases in Debian's docker-registry on 127.0.0.1: publish v1 and a 5 % update as OCI
// artifacts, devices install and upgrade fetching only new blobs; bearer-token auth (our own
// token server) over HTTPS with a custom CA, basic auth (htpasswd, bcrypt), and a proxy taken
// from the environment.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {PullResult} from '../src/remote/pull.js'
import {RegistryClient} from '../src/remote/registry.js'
import {
  cli,
  cliJson,
  defaultDigest,
  incomplete,
  makeSysroot,
  notOneClearError,
  schemaErrors,
  Sysroot,
} from './helpers/sysroot.js'
import {startProxy} from './helpers/proxy.js'
import {
  deviceConfig,
  keypair,
  publishOk,
  run,
  storeProblems,
  twoVersions,
  TwoVersions,
} from './helpers/releases.js'
import {Server, startRegistry} from './helpers/servers.js'
import {makeTls, makeTokenKey} from './helpers/tls.js'
import {startTokenServer, TokenServer} from './helpers/token-server.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-remote-oci-'))
after(() => rmSync(work, {recursive: true, force: true}))

let rel: TwoVersions
let keys: {key: string; pub: string}
before(async () => {
  rel = twoVersions(join(work, 'images'), {count: 200, changed: 8})
  keys = await keypair(join(work, 'release'))
})

async function device(config: string): Promise<Sysroot> {
  const s = await makeSysroot({parent: work})
  writeFileSync(s.config, config)
  return s
}

describe('OCI registry (plain http)', () => {
  let reg: Server
  let ref: string
  before(async () => {
    reg = await startRegistry(join(work, 'reg-plain'))
    ref = `oci://127.0.0.1:${reg.port}/cfsboot/os`
  })
  after(async () => reg?.stop())

  test('publish v1, install it, publish a 5 % update, upgrade fetches only new blobs', async () => {
    const p1 = await publishOk([
      '--objects',
      rel.v1.objects,
      '--to',
      ref,
      '--key',
      keys.key,
      '--insecure',
      rel.v1.image,
    ])
    assert.equal(schemaErrors('publish', p1), '')
    assert.equal(p1.kind, 'oci')
    const s = await device(deviceConfig(ref, keys.pub, 'insecure = true\n'))
    const first = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(first.r.code, 0, first.r.stderr)
    assert.equal(schemaErrors('pull', first.json), '')
    assert.equal(first.json.digest, rel.v1.digest)
    assert.deepEqual(await incomplete(s.paths, rel.v1.digest), [])

    const p2 = await publishOk([
      '--objects',
      rel.v2.objects,
      '--to',
      ref,
      '--key',
      keys.key,
      '--insecure',
      rel.v2.image,
    ])
    assert.equal((p2.objects as {uploaded: number}).uploaded, rel.newInV2.length, 'only new blobs are pushed')

    const up = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(up.r.code, 0, up.r.stderr)
    assert.equal(up.json.digest, rel.v2.digest)
    assert.equal(up.json.objects.downloaded, rel.newInV2.length)
    assert.equal(up.json.objects.bytesDownloaded, rel.newBytes)
    // tag → index, release manifest, index blob, image blob, one blob per new object
    assert.equal(up.json.transfer.requests, 4 + rel.newInV2.length)
    const imageBytes = statSync(rel.v2.image).size
    const overhead = up.json.transfer.bytes - rel.newBytes - imageBytes
    console.log(
      `# OCI 5 % update: ${up.json.objects.downloaded} blobs, ${up.json.transfer.bytes} bytes in ${up.json.transfer.requests} requests (new objects ${rel.newBytes}, image ${imageBytes}, manifests+index ${overhead})`,
    )
    assert.ok(overhead < 100_000, `index and manifests ${overhead} bytes`)
    assert.equal(await defaultDigest(s.paths), rel.v2.digest)
    assert.deepEqual(await incomplete(s.paths, rel.v2.digest), [])
    assert.deepEqual(storeProblems(s.paths.objects), [])

    // The artifact: an OCI index with the release manifest and an objects manifest.
    const c = new RegistryClient(`${ref}:stable`, {insecure: true})
    try {
      const idx = await c.getManifest('stable', ['application/vnd.oci.image.index.v1+json'])
      const m = JSON.parse(idx.bytes.toString()) as {manifests: {artifactType: string}[]}
      assert.deepEqual(
        m.manifests.map((x) => x.artifactType),
        ['application/vnd.cfsboot.release.v1', 'application/vnd.cfsboot.objects.v1'],
      )
    } finally {
      await c.close()
    }
  })

  test('pull through a proxy taken from HTTP_PROXY', async () => {
    const proxy = await startProxy()
    try {
      const s = await device(deviceConfig(ref, keys.pub, 'insecure = true\n'))
      const env = {HTTP_PROXY: proxy.url, http_proxy: proxy.url, NO_PROXY: '', no_proxy: ''}
      const r = await cliJson<PullResult>(s, ['upgrade'], env)
      assert.equal(r.r.code, 0, r.r.stderr)
      assert.equal(r.json.digest, rel.v2.digest)
      assert.ok(proxy.seen.length > 0, 'requests went through the proxy')
      assert.ok(
        proxy.seen.every((l) => l.includes(`127.0.0.1:${reg.port}`)),
        proxy.seen.join('\n'),
      )
    } finally {
      await proxy.stop()
    }
  })

  test('a repository without a release is one clear error (exit 1)', async () => {
    const s = await device(
      deviceConfig(`oci://127.0.0.1:${reg.port}/cfsboot/none`, keys.pub, 'insecure = true\n'),
    )
    assert.equal(notOneClearError(await cli(s, ['upgrade']), 1), '')
  })
})

describe('OCI registry with bearer tokens over HTTPS (custom CA)', () => {
  let reg: Server
  let tokens: TokenServer
  let tls: {ca: string; cert: string; key: string}
  let ref: string
  const pwFile = join(work, 'password')
  before(async () => {
    const d = join(work, 'reg-token')
    mkdirSync(d, {recursive: true})
    tls = makeTls(d)
    const tk = makeTokenKey(d)
    tokens = await startTokenServer({
      ...tk,
      issuer: 'cfsboot-test-issuer',
      service: 'cfsboot-test',
      users: {fleet: 's3cret'},
    })
    reg = await startRegistry(d, {
      tls,
      auth: {
        token: {realm: tokens.url, service: 'cfsboot-test', issuer: 'cfsboot-test-issuer', rootCert: tk.cert},
      },
    })
    ref = `oci://127.0.0.1:${reg.port}/cfsboot/secure`
    writeFileSync(pwFile, 's3cret\n')
  })
  after(async () => {
    await reg?.stop()
    await tokens?.stop()
  })

  test('publish and pull with a token, verified TLS', async () => {
    const creds = ['--username', 'fleet', '--password-file', pwFile, '--ca-file', tls.ca]
    await publishOk([
      '--objects',
      rel.v1.objects,
      '--to',
      `${ref}:stable`,
      '--key',
      keys.key,
      ...creds,
      rel.v1.image,
    ])
    assert.ok(tokens.requests.some((t) => t.user === 'fleet' && t.scope.endsWith(':pull,push')))
    const s = await device(
      deviceConfig(ref, keys.pub, `ca-file = ${tls.ca}\nusername = fleet\npassword-file = ${pwFile}\n`),
    )
    const r = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(r.r.code, 0, r.r.stderr)
    assert.equal(r.json.digest, rel.v1.digest)
    assert.deepEqual(await incomplete(s.paths, rel.v1.digest), [])
  })

  test('without the CA, or with a wrong password, one clear error and nothing changes', async () => {
    const noCa = await device(deviceConfig(ref, keys.pub, `username = fleet\npassword-file = ${pwFile}\n`))
    assert.equal(notOneClearError(await cli(noCa, ['upgrade']), 1), '')
    const bad = join(work, 'bad-password')
    writeFileSync(bad, 'wrong\n')
    const wrong = await device(
      deviceConfig(ref, keys.pub, `ca-file = ${tls.ca}\nusername = fleet\npassword-file = ${bad}\n`),
    )
    const r = await cli(wrong, ['upgrade'])
    assert.equal(notOneClearError(r, 1), '')
    assert.deepEqual(storeProblems(wrong.paths.objects), [])
  })
})

describe('OCI registry with basic auth (htpasswd)', () => {
  let reg: Server
  let ref: string
  const pwFile = join(work, 'basic-password')
  before(async () => {
    const d = join(work, 'reg-basic')
    mkdirSync(d, {recursive: true})
    execFileSync('htpasswd', ['-Bbc', join(d, 'htpasswd'), 'fleet', 'hunter2'], {stdio: 'ignore'})
    reg = await startRegistry(d, {auth: {htpasswd: join(d, 'htpasswd')}})
    ref = `oci://127.0.0.1:${reg.port}/cfsboot/basic`
    writeFileSync(pwFile, 'hunter2\n')
  })
  after(async () => reg?.stop())

  test('publish and pull with a username and password', async () => {
    const creds = ['--username', 'fleet', '--password-file', pwFile, '--insecure']
    await publishOk(['--objects', rel.v1.objects, '--to', ref, '--key', keys.key, ...creds, rel.v1.image])
    const s = await device(
      deviceConfig(ref, keys.pub, `insecure = true\nusername = fleet\npassword-file = ${pwFile}\n`),
    )
    const r = await cliJson<PullResult>(s, ['upgrade'])
    assert.equal(r.r.code, 0, r.r.stderr)
    assert.equal(r.json.digest, rel.v1.digest)
    const anon = await run([
      'publish',
      '--objects',
      rel.v1.objects,
      '--to',
      ref,
      '--key',
      keys.key,
      '--insecure',
      rel.v1.image,
    ])
    assert.equal(anon.code, 1, anon.stderr)
  })
})
