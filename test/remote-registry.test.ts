// The OCI registry client against Debian's docker-registry on 127.0.0.1: references, blobs
// (push, HEAD, Range reads), manifests and an image index, and the digest check on manifests.
import assert from 'node:assert/strict'
import {mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {parseReference} from '../src/remote/reference.js'
import {parseChallenge, RegistryClient, sha256Digest} from '../src/remote/registry.js'
import {Server, startRegistry} from './helpers/servers.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-registry-test-'))
after(() => rmSync(work, {recursive: true, force: true}))

describe('references', () => {
  test('docker:// and oci:// forms', () => {
    assert.deepEqual(parseReference('docker://127.0.0.1:5000/a/b:v1'), {
      registry: '127.0.0.1:5000',
      repository: 'a/b',
      tag: 'v1',
    })
    const d = `sha256:${'a'.repeat(64)}`
    assert.deepEqual(parseReference(`oci://reg.example/x@${d}`), {
      registry: 'reg.example',
      repository: 'x',
      digest: d,
    })
    assert.deepEqual(parseReference('oci://h/x'), {registry: 'h', repository: 'x'})
  })
  for (const bad of [
    'http://h/x',
    'oci://h',
    'oci:///x',
    'oci://h/UPPER',
    'oci://h/x:b@d',
    'oci://h/../x',
    'oci://h/x:-t',
  ])
    test(`refuses ${bad}`, () => assert.throws(() => parseReference(bad), {code: 'EINVALID'}))
  test('challenges', () => {
    assert.deepEqual(
      parseChallenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"'),
      {
        scheme: 'bearer',
        params: {realm: 'https://a/token', service: 'reg', scope: 'repository:x:pull'},
      },
    )
    assert.equal(parseChallenge('Basic realm="r"')!.scheme, 'basic')
  })
})

describe('registry client against docker-registry', () => {
  let server: Server
  let client: RegistryClient
  before(async () => {
    server = await startRegistry(join(work, 'reg'))
    client = new RegistryClient(`docker://127.0.0.1:${server.port}/cfsboot/test:v1`, {insecure: true})
  })
  after(async () => {
    await client?.close()
    await server?.stop()
  })

  test('blobs: push once, HEAD, read from an offset', async () => {
    const b = Buffer.from('0123456789'.repeat(1000))
    const d = sha256Digest(b)
    assert.equal(await client.hasBlob(d), false)
    assert.equal(await client.pushBlob(d, b, b.length), 'pushed')
    assert.equal(await client.pushBlob(d, b, b.length), 'present')
    assert.equal(await client.hasBlob(d), true)
    const chunks: Buffer[] = []
    for await (const c of await client.blobStream(d, {offset: 9990})) chunks.push(c as Buffer)
    assert.equal(Buffer.concat(chunks).toString(), '0123456789')
  })

  test('manifests and an index round-trip by tag and digest', async () => {
    const empty = Buffer.from('{}')
    await client.pushBlob(sha256Digest(empty), empty, empty.length)
    const m = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        artifactType: 'application/vnd.cfsboot.test.v1',
        config: {mediaType: 'application/vnd.oci.empty.v1+json', digest: sha256Digest(empty), size: 2},
        layers: [],
      }),
    )
    const md = await client.pushManifest('v1', 'application/vnd.oci.image.manifest.v1+json', m)
    const got = await client.getManifest('v1', ['application/vnd.oci.image.manifest.v1+json'])
    assert.equal(got.digest, md)
    assert.equal(got.mediaType, 'application/vnd.oci.image.manifest.v1+json')
    assert.deepEqual(got.bytes, m)
    const byDigest = await client.getManifest(md, ['application/vnd.oci.image.manifest.v1+json'])
    assert.equal(byDigest.digest, md)
  })

  test('a missing manifest or blob is one EREMOTE error', async () => {
    await assert.rejects(client.getManifest('nope', ['application/vnd.oci.image.manifest.v1+json']), {
      code: 'EREMOTE',
    })
    await assert.rejects(client.blobStream(sha256Digest(Buffer.from('absent'))), {code: 'EREMOTE'})
  })
})
