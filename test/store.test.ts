import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {InvalidInputError} from '../src/errors.js'
import {ObjectStore, OBJECT_MODE, TEMP_PREFIX} from '../src/store/objects.js'

function tempDir(t: {after: (fn: () => void) => void}): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfsboot-store-'))
  t.after(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}

/** Stand-in digests: the store trusts the caller's digest, so any 32 bytes name an object. */
const fakeDigest = (s: string): Buffer => createHash('sha256').update(s).digest()

async function listAll(store: ObjectStore): Promise<string[]> {
  const out: string[] = []
  for await (const d of store.list()) out.push(d.toString('hex'))
  return out
}

test('import copies once, read-only, under xx/62-hex-digits', async (t) => {
  const dir = tempDir(t)
  const src = join(dir, 'src')
  writeFileSync(src, 'object content')
  const store = new ObjectStore(join(dir, 'objects'))
  const d = fakeDigest('one')
  const hex = d.toString('hex')

  assert.equal(await store.has(d), false)
  assert.equal(await store.importFile(src, d), 'added')
  await store.flush()
  assert.equal(store.path(d), join(dir, 'objects', hex.slice(0, 2), hex.slice(2)))
  assert.equal(await store.has(d), true)
  assert.equal(readFileSync(store.path(d), 'utf8'), 'object content')
  const st = statSync(store.path(d))
  assert.equal(st.mode & 0o7777, OBJECT_MODE)
  assert.equal(st.nlink, 1, 'no hardlink to the source, and no leftover temporary name')
  assert.notEqual(st.ino, statSync(src).ino)

  // An existing object is never rewritten, and later edits of the source do not reach it.
  writeFileSync(src, 'edited source')
  assert.equal(await store.importFile(src, d), 'present')
  assert.equal(readFileSync(store.path(d), 'utf8'), 'object content')
  assert.deepEqual(readdirSync(join(dir, 'objects', hex.slice(0, 2))), [hex.slice(2)])
})

test('concurrent imports of one digest: one adds, the others find it', async (t) => {
  const dir = tempDir(t)
  const src = join(dir, 'src')
  writeFileSync(src, Buffer.alloc(300_000, 7))
  const d = fakeDigest('race')
  const results = await Promise.all(
    Array.from({length: 8}, () => new ObjectStore(join(dir, 'objects')).importFile(src, d)),
  )
  assert.equal(results.filter((r) => r === 'added').length, 1)
  assert.equal(results.filter((r) => r === 'present').length, 7)
  const hex = d.toString('hex')
  assert.deepEqual(readdirSync(join(dir, 'objects', hex.slice(0, 2))), [hex.slice(2)])
})

test('list, temporaries ignored and cleaned, strays skipped', async (t) => {
  const dir = tempDir(t)
  const objects = join(dir, 'objects')
  const store = new ObjectStore(objects)
  assert.deepEqual(await listAll(store), [], 'a missing store lists nothing')
  const digests = ['a', 'b', 'c', 'd'].map(fakeDigest)
  for (const [i, d] of digests.entries()) {
    writeFileSync(join(dir, `f${i}`), `file ${i}`)
    assert.equal(await store.importFile(join(dir, `f${i}`), d), 'added')
  }
  await store.flush()
  const hex = digests[0]!.toString('hex')
  // What a crash leaves behind, and names that are not objects.
  writeFileSync(join(objects, hex.slice(0, 2), `${TEMP_PREFIX}${'0'.repeat(62)}-abc`), 'partial')
  writeFileSync(join(objects, hex.slice(0, 2), 'not-an-object'), 'x')
  writeFileSync(join(objects, 'README'), 'x')
  assert.equal(await store.has(Buffer.alloc(32)), false)

  assert.deepEqual(await listAll(store), digests.map((d) => d.toString('hex')).sort())
  assert.equal(await store.cleanTemporary(), 1)
  assert.equal(await store.cleanTemporary(), 0)
  assert.ok(
    readdirSync(join(objects, hex.slice(0, 2))).includes('not-an-object'),
    'only temporaries are removed',
  )
})

test('bad digests and missing sources are refused', async (t) => {
  const dir = tempDir(t)
  const store = new ObjectStore(join(dir, 'objects'))
  assert.throws(() => store.path(Buffer.alloc(31)), InvalidInputError)
  await assert.rejects(store.importFile(join(dir, 'nope'), Buffer.alloc(33)), InvalidInputError)
  await assert.rejects(store.importFile(join(dir, 'nope'), fakeDigest('x')), {code: 'ENOENT'})
  assert.deepEqual(await listAll(store), [])
})

test('import with {link: true}: an object-shaped source is hardlinked, anything else copied', async (t) => {
  const dir = tempDir(t)
  const store = new ObjectStore(join(dir, 'objects'))
  const linkable = join(dir, 'linkable')
  writeFileSync(linkable, 'from another objects directory', {mode: OBJECT_MODE})
  chmodSync(linkable, OBJECT_MODE)
  assert.equal(await store.importFile(linkable, fakeDigest('l'), {link: true}), 'added')
  assert.equal(statSync(store.path(fakeDigest('l'))).ino, statSync(linkable).ino)

  // A private file must not become a shared inode with mode 0644: it is copied.
  const private_ = join(dir, 'private')
  writeFileSync(private_, 'not an object')
  chmodSync(private_, 0o600)
  assert.equal(await store.importFile(private_, fakeDigest('p'), {link: true}), 'added')
  const st = statSync(store.path(fakeDigest('p')))
  assert.notEqual(st.ino, statSync(private_).ino)
  assert.equal(st.mode & 0o7777, OBJECT_MODE)
  assert.equal(statSync(private_).mode & 0o7777, 0o600)

  // Without the option the store never links.
  assert.equal(await store.importFile(linkable, fakeDigest('c')), 'added')
  assert.notEqual(statSync(store.path(fakeDigest('c'))).ino, statSync(linkable).ino)
  await store.flush()
  assert.deepEqual(
    readdirSync(join(dir, 'objects', store.path(fakeDigest('l')).split('/').at(-2)!)).filter((n) =>
      n.startsWith(TEMP_PREFIX),
    ),
    [],
  )
})

test('a staged batch: invisible until commit, each content once, present ones skipped, abort leaves nothing', async (t) => {
  const dir = tempDir(t)
  const objects = join(dir, 'objects')
  const store = new ObjectStore(objects)
  // Enough distinct contents to touch more fan-out directories than flush() fsyncs one by one,
  // so the commit also takes the one-syncfs path.
  const files = Array.from({length: 40}, (_, i) => {
    const p = join(dir, `src-${i}`)
    writeFileSync(p, `content ${i}`)
    chmodSync(p, 0o700)
    return {p, d: fakeDigest(`batch ${i}`)}
  })
  assert.equal(await store.importFile(files[0]!.p, files[0]!.d), 'added')
  await store.flush()

  const staging = await store.stage()
  assert.equal(await staging.addFile(files[0]!.p, files[0]!.d), 'present', 'already in the store')
  for (const f of files.slice(1)) assert.equal(await staging.addFile(f.p, f.d), 'staged')
  assert.equal(await staging.addFile(files[1]!.p, files[1]!.d), 'present', 'already in this batch')
  const inMemory = await staging.addBuffer(Buffer.alloc(5000, 1))
  assert.equal((await staging.addBuffer(Buffer.alloc(5000, 1))).toString('hex'), inMemory.toString('hex'))
  assert.equal((await listAll(store)).length, 1, 'nothing staged has an object name before commit')

  assert.deepEqual(await staging.commit(), {added: 40, present: 0})
  const listed = await listAll(store)
  assert.equal(listed.length, 41)
  for (const f of files) {
    assert.equal(readFileSync(store.path(f.d), 'utf8'), readFileSync(f.p, 'utf8'))
    assert.equal(statSync(store.path(f.d)).mode & 0o7777, OBJECT_MODE)
  }
  assert.ok(listed.includes(inMemory.toString('hex')))
  assert.deepEqual(
    readdirSync(objects).filter((n) => n.startsWith('.')),
    [],
    'the staging directory is gone after commit',
  )

  const aborted = await store.stage()
  await aborted.addFile(join(dir, 'src-0'), fakeDigest('never stored'))
  await aborted.addBuffer(Buffer.alloc(3000, 9))
  await aborted.abort()
  assert.equal((await listAll(store)).length, 41, 'an aborted batch adds no object')
  assert.deepEqual(
    readdirSync(objects).filter((n) => n.startsWith('.')),
    [],
  )
})

test('a staged batch whose writes fail: commit rejects, abort cleans up, no thread is left running', async (t) => {
  const dir = tempDir(t)
  const store = new ObjectStore(join(dir, 'objects'))
  const staging = await store.stage()
  // The writer thread cannot create files once the staging directory is gone.
  rmSync(staging.dir, {recursive: true, force: true})
  await staging.addBuffer(Buffer.alloc(5000, 4))
  await assert.rejects(staging.commit(), /ENOENT/)
  await staging.abort()
  assert.equal((await listAll(store)).length, 0)
  // node:test would not end while a worker thread kept the event loop alive.
})
