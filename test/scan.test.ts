import assert from 'node:assert/strict'
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  linkSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {InvalidInputError} from '../src/errors.js'
import {GetfattrParser, unquoteGetfattr} from '../src/system/xattrs.js'
import {scanTree, type ScanResult} from '../src/tree/scan.js'
import {FsNode, S_IFCHR, walk} from '../src/tree/node.js'
import {makeSampleTree, NON_UTF8_NAME, sampleTreeSkip} from './helpers/sample-tree.js'
import {needTool} from './helpers/tools.js'

function tempDir(t: {after: (fn: () => void) => void}): string {
  const dir = mkdtempSync(join(tmpdir(), 'cfsboot-scan-'))
  t.after(() => rmSync(dir, {recursive: true, force: true}))
  return dir
}

function find(root: FsNode, path: string): FsNode {
  let n = root
  for (const part of path.split('/')) {
    const c = n.children?.get(part)
    assert.ok(c, `no ${path} in the scanned tree`)
    n = c
  }
  return n
}

/** A canonical text of a scan: every field of every entry, in sorted order. */
function canonical(r: ScanResult): string {
  const lines: string[] = []
  for (const n of walk(r.root)) {
    const t = n.linkTo ? `link->${n.linkTo.path()}` : ''
    const x = n.xattrs.map((a) => `${a.key}=${a.value.toString('hex')}`).join(',')
    lines.push(
      `${n.path()} ${n.mode.toString(8)} ${n.uid}:${n.gid} ${n.nlink} ${n.size} ${n.mtimeSec}.${n.mtimeNsec} ${n.rdev} ${n.payload} ${t} ${x}`,
    )
  }
  return lines.sort().join('\n') + '\n' + r.files.map((f) => f.node.path()).join('\n')
}

test('getfattr output: quoting, empty values, "=" in names, the root', () => {
  assert.equal(unquoteGetfattr('a\\012b\\134c\\075'), 'a\nb\\c=')
  const p = new GetfattrParser()
  p.push(
    '# file: .\nuser.root=0x01\n\n# file: dir/caf\xe9\nuser.eq\\075x=0x\nuser.bare\nsecurity.capability=0x0100',
  )
  p.push('0002\n\n# file: ./x\\012y\ntrusted.t=0xff\n')
  const m = p.end()
  assert.deepEqual([...m.keys()], ['', 'dir/caf\xe9', 'x\ny'])
  assert.deepEqual(
    m.get('dir/caf\xe9')!.map((x) => [x.key, x.value.toString('hex')]),
    [
      ['user.eq=x', ''],
      ['user.bare', ''],
      ['security.capability', '01000002'],
    ],
  )
  assert.throws(() => new GetfattrParser().push('user.a=0x01\n'), InvalidInputError)
  assert.throws(() => new GetfattrParser().push('# file: a\nuser.a="text"\n'), InvalidInputError)
})

test('refuses a root that is not a directory, or is missing', async (t) => {
  const dir = tempDir(t)
  writeFileSync(join(dir, 'file'), 'x')
  await assert.rejects(
    scanTree(join(dir, 'file')),
    (e: Error) => e instanceof InvalidInputError && /not a directory/.test(e.message),
  )
  await assert.rejects(scanTree(join(dir, 'missing')), InvalidInputError)
  symlinkSync('.', join(dir, 'link-to-dir'))
  await assert.rejects(scanTree(join(dir, 'link-to-dir')), /not a directory/)
})

test(
  'plain tree without root: types, hardlinks, non-UTF-8 names, deterministic order',
  {skip: needTool('getfattr', 'attr')},
  async (t) => {
    const dir = tempDir(t)
    mkdirSync(join(dir, 'a/b/empty'), {recursive: true})
    writeFileSync(join(dir, 'a/file'), 'content')
    linkSync(join(dir, 'a/file'), join(dir, 'a/b/zz-second-name'))
    linkSync(join(dir, 'a/file'), join(dir, 'first-name'))
    symlinkSync('../a/file', join(dir, 'a/b/rel'))
    symlinkSync('/nonexistent/target', join(dir, 'dangling'))
    writeFileSync(Buffer.from(`${dir}/name-\xff\xfe`, 'latin1'), 'latin1 named')
    const r = await scanTree(dir)

    // The first name in sorted depth-first order owns the inode: "a/b/zz-second-name" < "a/file" < "first-name".
    const owner = find(r.root, 'a/b/zz-second-name')
    assert.equal(owner.linkTo, null)
    assert.equal(owner.nlink, 3)
    assert.equal(find(r.root, 'a/file').linkTo, owner)
    assert.equal(find(r.root, 'first-name').linkTo, owner)
    assert.equal(find(r.root, 'a/b/rel').payload, '../a/file')
    assert.equal(find(r.root, 'dangling').payload, '/nonexistent/target')
    assert.ok(find(r.root, 'a/b/empty').isDir())
    assert.equal(find(r.root, 'a/b/empty').children!.size, 0)

    const odd = find(r.root, 'name-\xff\xfe')
    const scanned = r.files.find((f) => f.node === odd)!
    assert.ok(Buffer.isBuffer(scanned.path), 'a non-UTF-8 path is given as bytes')
    assert.equal(readFileSync(scanned.path, 'utf8'), 'latin1 named')

    // Each regular inode once, sorted depth-first.
    assert.deepEqual(
      r.files.map((f) => f.node.path()),
      ['/a/b/zz-second-name', '/name-\xff\xfe'],
    )
    assert.equal(canonical(await scanTree(dir, {sliceEntries: 1})), canonical(r))
    assert.equal(canonical(await scanTree(dir, {sliceEntries: 64})), canonical(r))
  },
)

test('sample tree: every attribute composefs keeps', {skip: sampleTreeSkip()}, async (t) => {
  const dir = join(tempDir(t), 'tree')
  makeSampleTree(dir)
  let progress = 0
  const r = await scanTree(dir, {onProgress: (n) => (progress = n)})
  assert.ok(progress > 40)

  assert.equal(r.root.getXattr('user.root-of-tree')?.toString('hex'), '03')
  assert.equal(r.root.mtimeSec, 1700000000)
  assert.equal(r.root.mtimeNsec, 123456789)

  const localtime = find(r.root, 'etc/localtime')
  assert.ok(localtime.isSymlink())
  assert.equal(localtime.payload, '/usr/share/zoneinfo/UTC')
  assert.equal(localtime.getXattr('trusted.on-a-symlink')?.toString('hex'), '01', "a symlink's own xattrs")
  assert.equal(find(r.root, 'bin').payload, 'usr/bin')
  assert.equal(find(r.root, 'bin').mtimeNsec, 1)
  assert.equal(find(r.root, 'etc/os-release').mtimeSec, 2000000000)
  assert.equal(find(r.root, 'etc/os-release').mtimeNsec, 999999999)

  for (const dev of ['dev/null', 'dev/sda', 'dev/odd']) {
    assert.equal(find(r.root, dev).rdev, Number(lstatSync(join(dir, dev), {bigint: true}).rdev), dev)
  }
  assert.equal(find(r.root, 'dev/odd').type, S_IFCHR)
  assert.equal(find(r.root, 'dev/sda').gid, 6)
  assert.equal(find(r.root, 'run/initctl').mode, 0o010644)
  assert.equal(find(r.root, 'run/sample.sock').type, 0o140000)

  assert.equal(find(r.root, 'usr/bin/su-sample').mode, 0o104755)
  assert.equal(find(r.root, 'usr/bin/su-sample').getXattr('security.capability')?.length, 20)
  assert.equal(find(r.root, 'usr/bin/wall-sample').mode, 0o102755)
  assert.equal(find(r.root, 'tmp').mode, 0o041777)
  assert.equal(
    find(r.root, 'usr/lib/cfsboot-sample/config.ini').getXattr('system.posix_acl_access')?.length,
    44,
  )
  assert.ok(find(r.root, 'var/lib/sample').getXattr('system.posix_acl_default'))
  assert.equal(find(r.root, 'usr/lib/cfsboot-sample').getXattr('trusted.sample')?.toString('hex'), 'deadbeef')
  assert.equal(find(r.root, 'usr/lib/cfsboot-sample/large.bin').getXattr('user.big-value')?.length, 2000)
  assert.equal(find(r.root, 'usr/lib/cfsboot-sample/large.bin').size, 200_000)
  assert.equal(find(r.root, 'usr/lib/cfsboot-sample/empty').size, 0)

  const notes = find(r.root, 'home/user/notes.txt')
  assert.deepEqual([notes.uid, notes.gid], [1234, 1234])
  const notesLink = find(r.root, 'home/user/notes-link')
  assert.deepEqual([notesLink.uid, notesLink.gid], [1234, 4321])

  const tiny = find(r.root, 'etc/tiny')
  assert.equal(tiny.nlink, 3)
  assert.equal(find(r.root, 'etc/tiny-link1').linkTo, tiny)
  assert.equal(find(r.root, 'usr/lib/cfsboot-sample/tiny-link2').linkTo, tiny)
  assert.equal(tiny.getXattr('user.shared-by-hardlinks')?.toString('hex'), '02')
  assert.equal(find(r.root, 'usr/bin/hello').nlink, 2)
  assert.equal(find(r.root, 'usr/bin/hello-again').linkTo, find(r.root, 'usr/bin/hello'))
  assert.equal(find(r.root, 'usr/lib/cfsboot-sample/exactly-65-bytes').nlink, 1)

  const latin1 = NON_UTF8_NAME.toString('latin1')
  assert.ok(find(r.root, latin1).isReg())

  // Regular-file inodes once each, none of them a hardlink alias.
  const paths = r.files.map((f) => f.node.path())
  assert.equal(new Set(paths).size, paths.length)
  assert.ok(r.files.every((f) => f.node.isReg() && !f.node.linkTo))
  assert.ok(paths.includes('/etc/tiny') && !paths.includes('/etc/tiny-link1'))
  for (const f of r.files) assert.equal(lstatSync(f.path).size, f.node.size)

  assert.equal(canonical(await scanTree(dir, {sliceEntries: 1})), canonical(r))
  const bare = await scanTree(dir, {skipXattrs: true})
  assert.equal(bare.root.xattrs.length, 0)
})
