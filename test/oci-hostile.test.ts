// Hostile container image layers, each built byte by byte in code (node-tar's test/ghsa-*
// tests are the model): every one is refused with a typed error, leaves no image behind, and
// leaves the objects directory holding only verified objects (no staging area, no object of
// the refused layer).

import assert from 'node:assert/strict'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'
import {gzipSync} from 'node:zlib'

import {buildImage} from '../src/build.js'
import {CfsError} from '../src/errors.js'
import {ObjectStore} from '../src/store/objects.js'
import {fsverityDigest} from '../src/verity/merkle.js'
import {
  gzipLayer,
  makeTar,
  plainLayer,
  sha256,
  writeLayout,
  type LayerBlob,
  type TarSpec,
} from './helpers/oci.js'

const ok = (name: string, data: string | Buffer): TarSpec => ({name, data: Buffer.from(data)})
const dir = (name: string): TarSpec => ({name, type: '5', mode: 0o755})
/** A file big enough to be stored as an object (so the refusal has something to keep out). */
const bigFile = ok('big', Buffer.alloc(200_000, 7))

function tempDir(t: {after: (fn: () => void) => void}): string {
  const d = mkdtempSync(join(tmpdir(), 'cfsboot-oci-hostile-'))
  t.after(() => rmSync(d, {recursive: true, force: true}))
  return d
}

/** Every file in the store is a well-named object whose content has that digest; returns how many. */
async function verifiedObjects(objects: string): Promise<number> {
  if (!existsSync(objects)) return 0
  for (const name of readdirSync(objects))
    assert.ok(/^[0-9a-f]{2}$|^\.layers$/.test(name), `stray ${name} in the store`)
  const store = new ObjectStore(objects)
  let n = 0
  for await (const d of store.list()) {
    assert.deepEqual(fsverityDigest(readFileSync(store.path(d))), d)
    n++
  }
  return n
}

async function refused(
  t: {after: (fn: () => void) => void},
  layers: LayerBlob[],
  code: string,
  opts: {layerDigests?: (string | undefined)[]; maxLayerBytes?: number; diffIds?: string[]} = {},
): Promise<{objects: string; error: CfsError}> {
  const work = tempDir(t)
  const layout = join(work, 'layout')
  writeLayout(layout, layers, {tag: 't', ...(opts.layerDigests && {layerDigests: opts.layerDigests})})
  const output = join(work, 'out.cfs')
  const objects = join(work, 'objects')
  let error: CfsError | undefined
  try {
    await buildImage({
      source: `oci:${layout}:t`,
      output,
      objects,
      ...(opts.maxLayerBytes !== undefined && {maxLayerBytes: opts.maxLayerBytes}),
    })
  } catch (err) {
    error = err as CfsError
  }
  assert.ok(error instanceof CfsError, `expected a CfsError, got ${String(error)}`)
  assert.equal(error.code, code, error.message)
  assert.ok(!existsSync(output), 'no image is left behind')
  assert.deepEqual(
    readdirSync(work).filter((n) => n !== 'layout' && n !== 'objects'),
    [],
    'no temporary output file either',
  )
  await verifiedObjects(objects)
  return {objects, error}
}

const cases: [string, TarSpec[]][] = [
  ['"../" in a name', [bigFile, ok('../escape', 'x')]],
  ['a name with ".." in the middle', [bigFile, ok('a/../../escape', 'x')]],
  ['an absolute name', [bigFile, ok('/etc/passwd', 'x')]],
  ['a hardlink pointing outside', [bigFile, {name: 'h', type: '1', linkname: '../../etc/shadow'}]],
  ['an absolute hardlink', [bigFile, {name: 'h', type: '1', linkname: '/etc/shadow'}]],
  ['a hardlink to nothing', [bigFile, {name: 'h', type: '1', linkname: 'nowhere'}]],
  ['a hardlink to a directory', [bigFile, dir('d'), {name: 'h', type: '1', linkname: 'd'}]],
  ['a write through a symlink', [bigFile, {name: 'etc', type: '2', linkname: '/etc'}, ok('etc/passwd', 'x')]],
  ['a whiteout for ".."', [bigFile, dir('a'), ok('a/.wh..', '')]],
  ['a whiteout for "."', [bigFile, ok('.wh..', '')]],
  [
    'a name over 255 bytes (PAX)',
    [bigFile, {name: 'x', data: Buffer.from('x'), pax: {path: 'n'.repeat(256)}}],
  ],
  ['a PAX path with ".."', [bigFile, {name: 'ok', data: Buffer.from('x'), pax: {path: 'a/../../x'}}]],
  ['a sparse file', [bigFile, {name: 's', type: 'S', size: 0}]],
  ['an unknown entry type', [bigFile, {name: 'v', type: 'V'}]],
  ['the root as a file', [bigFile, ok('./', 'x')]],
]

for (const [what, entries] of cases) {
  test(`oci hostile: ${what} is refused`, async (t) => {
    const {objects} = await refused(t, [gzipLayer(makeTar(entries))], 'EINVALID')
    assert.equal(await verifiedObjects(objects), 0, 'nothing of the refused layer is stored')
  })
}

test('oci hostile: an absurd size is refused before anything is read', async (t) => {
  const tar = makeTar([bigFile, {name: 'huge', size: 2 ** 60}], {end: false})
  await refused(t, [plainLayer(tar)], 'EINVALID')
  const tar2 = makeTar([bigFile, {name: 'huge', size: 10 << 20}], {end: false}) // beyond the data there is
  await refused(t, [plainLayer(tar2)], 'EINVALID')
})

test('oci hostile: a gzip bomb stops at the byte budget', async (t) => {
  // 256 MiB of zeros in one file: about 250 KB compressed.
  const size = 256 << 20
  const head = makeTar([{name: 'bomb', size}], {end: false}).subarray(0, 512)
  const blob = gzipSync(Buffer.concat([head, Buffer.alloc(size), Buffer.alloc(1024)]), {level: 9})
  assert.ok(blob.length < 1 << 20)
  const layer: LayerBlob = {
    blob,
    tar: Buffer.alloc(0),
    mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
  }
  const started = Date.now()
  const {error} = await refused(t, [layer], 'EINVALID', {maxLayerBytes: 32 << 20})
  assert.match(error.message, /expands beyond|beyond what the layer can hold/)
  assert.ok(Date.now() - started < 20_000)
})

test('oci hostile: a layer whose digest does not match its descriptor adds no object', async (t) => {
  const good = gzipLayer(makeTar([bigFile, ok('small', 'hi')]))
  const other = sha256(Buffer.from('something else'))
  // The blob is stored under the digest the manifest names, but its bytes are another layer's.
  const work = tempDir(t)
  const layout = join(work, 'layout')
  writeLayout(layout, [good], {tag: 't', layerDigests: [other]})
  writeFileSync(join(layout, 'blobs/sha256', other.slice(7)), good.blob)
  const objects = join(work, 'objects')
  await assert.rejects(
    buildImage({source: `oci:${layout}:t`, output: join(work, 'out.cfs'), objects}),
    (e: CfsError) => e.code === 'EDIGEST' && e.exitCode === 4,
  )
  assert.ok(!existsSync(join(work, 'out.cfs')))
  assert.equal(await verifiedObjects(objects), 0)
})

test('oci hostile: a layer whose content is not its diff ID adds no object', async (t) => {
  const good = gzipLayer(makeTar([bigFile]))
  const lie: LayerBlob = {...good, tar: makeTar([ok('other', 'x')])} // config lists another diff ID
  const {objects} = await refused(t, [lie], 'EDIGEST')
  assert.equal(await verifiedObjects(objects), 0)
})

test('oci hostile: truncated archives and bad header checksums are refused', async (t) => {
  const full = makeTar([bigFile])
  await refused(t, [gzipLayer(full.subarray(0, 100_000))], 'EINVALID')
  const bad = Buffer.from(full)
  bad[0] ^= 1
  await refused(t, [plainLayer(bad)], 'EINVALID')
  // Corrupt gzip: the digest check comes second, so the bytes must match the descriptor.
  const gz = gzipLayer(full)
  const broken = Buffer.from(gz.blob)
  broken[broken.length - 5] ^= 0xff // the trailer's CRC/size
  const {error} = await refused(t, [{...gz, blob: broken}], 'EINVALID')
  // zlib's complaint reaches the user as one line from the gunzip worker, naming the layer.
  assert.match(error.message, /^sha256:[0-9a-f]{64}: layer: gzip: [^\n]+$/)
})

test('oci: staged objects are invisible until commit, and a crash leaves only what cleanTemporary removes', async (t) => {
  const work = tempDir(t)
  const store = new ObjectStore(join(work, 'objects'))
  const data = Buffer.alloc(10_000, 3)
  const staging = await store.stage()
  const w = await staging.create()
  await w.write(data.subarray(0, 4000))
  await w.write(data.subarray(4000))
  const digest = await w.end()
  assert.deepEqual(digest, fsverityDigest(data))
  assert.equal(await store.has(digest), false)
  // A second staging area that is never committed (the process "crashed").
  const crashed = await store.stage()
  await (await crashed.create()).write(Buffer.alloc(5000, 9))
  assert.deepEqual(await staging.commit(), {added: 1, present: 0})
  assert.equal(await store.has(digest), true)
  assert.deepEqual(readFileSync(store.path(digest)), data)
  assert.equal(await store.cleanTemporary(), 1)
  assert.deepEqual(readdirSync(store.dir).sort(), [store.path(digest).split('/').at(-2)!])
  // Staging the same content again adds nothing.
  const again = await store.stage()
  const w2 = await again.create()
  await w2.write(data)
  await w2.end()
  assert.deepEqual(await again.commit(), {added: 0, present: 0})
})
