// Container image sources, feature by feature, on small images built in code: multi-arch
// indexes and --platform, tags, PAX records (ns mtimes, xattrs of both spellings, long names),
// GNU long names, hardlinks across layers, opaque directories and same-layer entries, the layer
// cache's fallback when an object went missing, and docker:// against Debian's docker-registry.

import assert from 'node:assert/strict'
import {execFileSync, spawnSync} from 'node:child_process'
import {copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {buildImage} from '../src/build.js'
import {CfsError} from '../src/errors.js'
import {readImage} from '../src/format/erofs/reader.js'
import {hostPlatform} from '../src/oci/manifest.js'
import {parseImageReference} from '../src/oci/reference.js'
import {ObjectStore} from '../src/store/objects.js'
import type {FsNode} from '../src/tree/node.js'
import {gzipLayer, makeTar, readIndex, sha256, writeLayout, zstdLayer, type TarSpec} from './helpers/oci.js'
import {startRegistry} from './helpers/servers.js'
import {REPO, RUN_JS} from './helpers/sysroot.js'
import {makeTls} from './helpers/tls.js'

function tempDir(t: {after: (fn: () => void) => void}): string {
  const d = mkdtempSync(join(tmpdir(), 'cfsboot-oci-feat-'))
  t.after(() => rmSync(d, {recursive: true, force: true}))
  return d
}

const file = (name: string, data: string | Buffer, more: Partial<TarSpec> = {}): TarSpec => ({
  name,
  data: Buffer.from(data),
  ...more,
})
const dir = (name: string, more: Partial<TarSpec> = {}): TarSpec => ({name, type: '5', mode: 0o755, ...more})

function node(root: FsNode, path: string): FsNode | undefined {
  let n: FsNode | undefined = root
  for (const p of path.split('/')) n = n?.children?.get(p)
  return n
}

async function tree(image: string): Promise<FsNode> {
  return readImage(readFileSync(image)).root
}

const big = (c: number): Buffer => Buffer.alloc(100_000, c)

const base = makeTar([
  dir('./', {mtime: 1000}),
  dir('etc'),
  file('etc/a', big(1)),
  file('etc/keep', 'keep'),
  dir('var'),
  dir('var/lib'),
  file('var/lib/old', 'old'),
  file('var/lib/older', big(2)),
  // GNU long name, as `tar --format=gnu` writes it
  {name: '././@LongLink', type: 'L', data: Buffer.from('etc/' + 'g'.repeat(180) + '\0')},
  file('etc/ggg', 'gnu long name'),
])
const upper = makeTar([
  dir('etc'),
  // a hardlink to a file of the layer below
  {name: 'etc/a-link', type: '1', linkname: 'etc/a'},
  dir('var/lib'),
  file('var/lib/new-before', 'same layer, before the marker'),
  file('var/lib/.wh..wh..opq', ''),
  file('var/lib/new', 'new'),
  file('etc/pax', 'pax', {
    pax: {
      mtime: '1700000000.123456789',
      'SCHILY.xattr.security.capability': Buffer.from('0000000200200000000000000000000000000000', 'hex'),
      'LIBARCHIVE.xattr.user.caf%C3%A9': Buffer.from('dmFsdWU=', 'latin1'),
      path: 'etc/' + 'p'.repeat(200),
    },
  }),
])

test('oci: PAX and GNU names, xattrs, ns mtimes, cross-layer hardlinks, opaque directories', async (t) => {
  const work = tempDir(t)
  writeLayout(join(work, 'l'), [gzipLayer(base), zstdLayer(upper)], {tag: 'x'})
  const out = join(work, 'i.cfs')
  const r = await buildImage({source: `oci:${join(work, 'l')}:x`, output: out, objects: join(work, 'o')})
  assert.equal(r.oci!.layers, 2)
  const root = await tree(out)
  assert.equal(root.mtimeSec, 1000)
  assert.equal(node(root, 'etc/' + 'g'.repeat(180))?.size, 'gnu long name'.length)
  const pax = node(root, 'etc/' + 'p'.repeat(200))!
  assert.equal(pax.mtimeSec, 1700000000)
  assert.equal(pax.mtimeNsec, 123456789)
  assert.equal(
    pax.getXattr('security.capability')?.toString('hex'),
    '0000000200200000000000000000000000000000',
  )
  assert.equal(pax.getXattr('user.caf\xc3\xa9')?.toString(), 'value')
  // etc/a and etc/a-link: one inode.
  const a = node(root, 'etc/a')!
  const link = node(root, 'etc/a-link')!
  assert.equal((link.linkTo ?? link).target(), (a.linkTo ?? a).target())
  assert.equal(a.target().nlink, 2)
  // The opaque marker removed the lower layer's var/lib content, not this layer's.
  assert.deepEqual([...node(root, 'var/lib')!.children!.keys()].sort(), ['new', 'new-before'])
})

test('oci: a multi-arch index picks this machine, or --platform; tags pick the image', async (t) => {
  const work = tempDir(t)
  const l = join(work, 'l')
  const host = hostPlatform().architecture
  const other = host === 'arm64' ? 'amd64' : 'arm64'
  writeLayout(l, [gzipLayer(makeTar([file('arch', other)]))], {arch: other})
  const m1 = readIndex(l).manifests[0]!
  writeLayout(l, [gzipLayer(makeTar([file('arch', host)]))], {arch: host})
  const m2 = readIndex(l).manifests[0]!
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [m1, m2],
    }),
  )
  const d = sha256(index)
  writeFileSync(join(l, 'blobs/sha256', d.slice(7)), index)
  writeFileSync(
    join(l, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          digest: d,
          size: index.length,
          annotations: {'org.opencontainers.image.ref.name': 'multi'},
        },
        {...m1, annotations: {'org.opencontainers.image.ref.name': 'single'}},
      ],
    }),
  )
  const content = async (src: string, platform?: string): Promise<string> => {
    const out = join(work, 'o.cfs')
    await buildImage({source: src, output: out, ...(platform && {platform})})
    return node(await tree(out), 'arch')!.content!.toString()
  }
  assert.equal(await content(`oci:${l}:multi`), host)
  assert.equal(await content(`oci:${l}:multi`, `linux/${other}`), other)
  assert.equal(await content(`oci:${l}:single`), other)
  await assert.rejects(content(`oci:${l}:multi`, 'linux/s390x'), (e: CfsError) => e.code === 'EINVALID')
  await assert.rejects(content(`oci:${l}`), (e: CfsError) => e.code === 'EINVALID') // two images, no tag
  await assert.rejects(content(`oci:${l}:nope`), (e: CfsError) => e.code === 'EINVALID')
  assert.deepEqual(parseImageReference('oci:/a/b:t'), {transport: 'oci', path: '/a/b', tag: 't'})
  assert.equal(parseImageReference('/plain/dir'), null)
  assert.equal(parseImageReference('./oci'), null)
})

test('oci: the layer cache is used only while every object it names is in the store', async (t) => {
  const work = tempDir(t)
  writeLayout(join(work, 'l'), [gzipLayer(base)], {tag: 'x'})
  const objects = join(work, 'o')
  const src = `oci:${join(work, 'l')}:x`
  const first = await buildImage({source: src, output: join(work, '1.cfs'), objects})
  assert.equal(first.oci!.cachedLayers, 0)
  assert.equal((await buildImage({source: src, output: join(work, '2.cfs'), objects})).oci!.cachedLayers, 1)
  // A gc took one object: the layer is read again and the object comes back.
  const store = new ObjectStore(objects)
  const [victim] = [await store.list()[Symbol.asyncIterator]().next()].map((r) => r.value as Buffer)
  unlinkSync(store.path(victim!))
  const third = await buildImage({source: src, output: join(work, '3.cfs'), objects})
  assert.equal(third.oci!.cachedLayers, 0)
  assert.equal(third.objects.added, 1)
  assert.equal(third.digest, first.digest)
})

const haveRegistry = ((): boolean => {
  try {
    execFileSync('sh', ['-c', 'command -v docker-registry && command -v skopeo'])
    return true
  } catch {
    return false
  }
})()

test(
  'oci: docker:// from a registry (docker-registry on 127.0.0.1) gives the same image as the layout',
  {skip: haveRegistry ? false : 'needs docker-registry and skopeo (Debian packages docker-registry, skopeo)'},
  async (t) => {
    const work = tempDir(t)
    const server = await startRegistry(join(work, 'reg'))
    t.after(() => server.stop())
    const l = join(work, 'l')
    writeLayout(l, [gzipLayer(base), zstdLayer(upper)], {tag: 'v1'})
    const name = `127.0.0.1:${server.port}/cfsboot/img:v1`
    execFileSync('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${l}:v1`, `docker://${name}`])
    const fromLayout = await buildImage({source: `oci:${l}:v1`, output: join(work, 'a.cfs')})
    const objects = join(work, 'o')
    const fromRegistry = await buildImage({
      source: `docker://${name}`,
      output: join(work, 'b.cfs'),
      objects,
      registry: {insecure: true},
    })
    assert.equal(fromRegistry.digest, fromLayout.digest)
    assert.equal(fromRegistry.oci!.cachedLayers, 0)
    const again = await buildImage({
      source: `docker://${name}`,
      output: join(work, 'c.cfs'),
      objects,
      registry: {insecure: true},
    })
    assert.equal(again.oci!.cachedLayers, 2)
    await assert.rejects(
      buildImage({
        source: `docker://127.0.0.1:${server.port}/cfsboot/none:v1`,
        output: join(work, 'd.cfs'),
        registry: {insecure: true},
      }),
      (e: CfsError) => e instanceof CfsError,
    )
  },
)

test(
  'oci: build docker:// from a registry with a private CA and a password (--ca-file, --username, --password-file)',
  {skip: haveRegistry ? false : 'needs docker-registry and skopeo (Debian packages docker-registry, skopeo)'},
  async (t) => {
    const work = tempDir(t)
    const tls = makeTls(work)
    const htpasswd = join(work, 'htpasswd')
    execFileSync('htpasswd', ['-Bbc', htpasswd, 'builder', 'hunter2'], {stdio: 'ignore'})
    const server = await startRegistry(join(work, 'reg'), {tls, auth: {htpasswd}})
    t.after(() => server.stop())
    const l = join(work, 'l')
    writeLayout(l, [gzipLayer(base), zstdLayer(upper)], {tag: 'v1'})
    const certs = join(work, 'certs') // skopeo trusts the *.crt files of --dest-cert-dir
    mkdirSync(certs)
    copyFileSync(tls.ca, join(certs, 'ca.crt'))
    const name = `127.0.0.1:${server.port}/cfsboot/private:v1`
    execFileSync('skopeo', [
      'copy',
      '-q',
      '--dest-cert-dir',
      certs,
      '--dest-creds',
      'builder:hunter2',
      `oci:${l}:v1`,
      `docker://${name}`,
    ])
    const expected = await buildImage({source: `oci:${l}:v1`, output: join(work, 'a.cfs')})
    const password = join(work, 'password')
    writeFileSync(password, 'hunter2\n')
    const build = (out: string, ...flags: string[]) =>
      spawnSync(process.execPath, [RUN_JS, 'build', `docker://${name}`, '-o', join(work, out), ...flags], {
        encoding: 'utf8',
      })
    const ok = build('b.cfs', '--ca-file', tls.ca, '--username', 'builder', '--password-file', password)
    assert.equal(ok.status, 0, ok.stderr)
    assert.equal(ok.stdout.trim(), expected.digest)
    // The CA given the Node way, NODE_EXTRA_CA_CERTS, through bin/cfsboot (which moves it aside
    // so that Node does not load it at start-up, and the HTTP client adds it back).
    const viaEnv = spawnSync(
      join(REPO, 'bin', 'cfsboot'),
      [
        'build',
        `docker://${name}`,
        '-o',
        join(work, 'e.cfs'),
        '--username',
        'builder',
        '--password-file',
        password,
      ],
      {encoding: 'utf8', env: {...process.env, NODE_EXTRA_CA_CERTS: tls.ca}},
    )
    assert.equal(viaEnv.status, 0, viaEnv.stderr)
    assert.equal(viaEnv.stdout.trim(), expected.digest)
    // Without the CA the TLS handshake fails; without the password the registry says 401.
    for (const [out, flags] of [
      ['c.cfs', ['--username', 'builder', '--password-file', password]],
      ['d.cfs', ['--ca-file', tls.ca]],
    ] as const) {
      const r = build(out, ...flags)
      assert.equal(r.status, 1, r.stderr)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.throws(() => readFileSync(join(work, out)), /ENOENT/)
    }
  },
)
