// The image reader: what it rebuilds from images our writer makes, that writing it again gives
// the same bytes, and that hostile images (each built here by patching a valid one) are refused
// with one InvalidInputError line.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {InvalidInputError} from '../src/errors.js'
import {parseDump} from '../src/format/dump/parse.js'
import {dumpToString} from '../src/format/dump/write.js'
import {CfsHeader, Compact, Extended, Super, SUPER_OFFSET} from '../src/format/erofs/layout.js'
import {imageDigest, listObjects, readImage, readImageInfo} from '../src/format/erofs/reader.js'
import type {ReadOptions} from '../src/format/erofs/reader.js'
import {writeImage} from '../src/format/erofs/writer.js'
import {FsNode, S_IFCHR, S_IFMT} from '../src/tree/node.js'
import {direntsOf, inodeAt, lookupNid, rootNid} from './helpers/erofs-walk.js'
import {dir, externalFile, hardlink, inlineFile, richTree, smallTree} from './helpers/sample-trees.js'
import {upstreamCases} from './helpers/upstream.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-reader-'))
after(() => rmSync(work, {recursive: true, force: true}))

function get(root: FsNode, path: string): FsNode {
  let n = root
  for (const part of path.split('/').filter(Boolean)) {
    const c = n.children?.get(part)
    assert.ok(c, `no ${path}`)
    n = c
  }
  return n
}

describe('reading what the writer wrote', () => {
  const written = writeImage(richTree())
  const tree = readImage(written.image)
  const root = tree.root

  it('writing the tree read back gives the same bytes (format 0 and 1)', () => {
    for (const opts of [{}, {minVersion: 0, maxVersion: 0}, {minVersion: 1}]) {
      const w = writeImage(richTree(), opts)
      assert.ok(writeImage(readImage(w.image).root, opts).image.equals(w.image))
    }
  })

  it('restores files, symlinks, devices and times', () => {
    const hosts = get(root, 'etc/hosts')
    assert.equal(hosts.content?.toString(), '127.0.0.1 localhost\n')
    assert.equal(hosts.mtimeSec, 1_700_000_000) // compact inode: the superblock's build time
    assert.equal(get(root, 'etc/passwd').mtimeSec, 1_700_000_005)
    assert.deepEqual(get(root, 'etc/mid').content, Buffer.alloc(4500, 0x41)) // a block and a tail
    assert.equal(get(root, 'usr/bin/rel').payload, 'sh')
    assert.equal(get(root, 'usr/bin/long').payload, 'x/'.repeat(1500) + 'end')
    assert.equal(get(root, 'dev/sda1').rdev, (8 << 8) | 1)
    assert.equal(get(root, 'empty').size, 0)
    assert.equal(get(root, 'empty').content, null)
    assert.equal(get(root, 'usr/share').children?.size, 300)
    assert.equal(
      get(root, 'd0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/leaf').size,
      10,
    )
  })

  it('turns overlay xattrs back into payloads and digests', () => {
    const bash = get(root, 'usr/bin/bash')
    assert.equal(bash.size, 123456)
    assert.equal(bash.uid, 70000)
    assert.equal(bash.payload, 'ab/' + 'ab'.repeat(31))
    assert.deepEqual(bash.digest, Buffer.alloc(32, 0xab))
    assert.equal(bash.content, null)
    assert.deepEqual(
      bash.xattrs.map((x) => x.key),
      [],
    )
    assert.equal(get(root, 'etc/passwd').getXattr('trusted.overlay.custom')?.toString(), 'escaped')
    assert.deepEqual(
      get(root, 'etc/passwd')
        .xattrs.map((x) => x.key)
        .sort(),
      ['security.selinux', 'trusted.overlay.custom'],
    )
    assert.equal(get(root, 'etc/hosts').getXattr('user.note')?.toString(), 'a=b')
  })

  it('hides composefs bookkeeping: root whiteouts, opaque marks, escaped whiteouts', () => {
    assert.deepEqual([...root.children!.keys()].sort(), ['d0', 'dev', 'empty', 'etc', 'usr'])
    assert.deepEqual(
      root.xattrs.map((x) => x.key),
      ['security.selinux'],
    )
    const gone = get(root, 'dev/gone')
    assert.equal(gone.mode & S_IFMT, S_IFCHR)
    assert.equal(gone.rdev, 0)
    assert.deepEqual(gone.xattrs, [])
    const devKeys = get(root, 'dev').xattrs.map((x) => x.key)
    assert.ok(
      !devKeys.includes('user.overlay.whiteouts') && !devKeys.includes('trusted.overlay.overlay.whiteouts'),
    )
  })

  it('gives every later name of an inode as a hardlink to the first', () => {
    assert.equal(get(root, 'etc/hosts.link').linkTo, get(root, 'etc/hosts'))
    assert.equal(get(root, 'usr/bin/sh').linkTo, get(root, 'usr/bin/bash'))
  })

  it('puts a hardlinked inode at its first name, and writing that again is stable', () => {
    const r = dir()
    const f = inlineFile('data')
    r.addChild('z', f)
    r.addChild('a', hardlink(f))
    const first = readImage(writeImage(r).image).root
    assert.equal(first.children!.get('z')!.linkTo, first.children!.get('a'))
    const again = writeImage(first).image
    assert.ok(writeImage(readImage(again).root).image.equals(again))
  })

  it('counts inodes and names, and reads the header cheaply', () => {
    assert.equal(tree.entryCount, tree.inodeCount + 2) // two hardlink names
    const info = readImageInfo(written.image)
    assert.deepEqual(info, tree.info)
    assert.equal(info.composefsVersion, written.version)
    assert.equal(info.inodes, written.inodes)
    assert.equal(info.blocks * 4096, written.image.length)
    assert.equal(info.size, written.image.length)
    assert.equal(info.buildTimeSec, 1_700_000_000)
  })

  it('lists the objects the image refers to, sorted, once each', () => {
    assert.deepEqual(listObjects(tree), [
      '01/' + '01'.repeat(31),
      'ab/' + 'ab'.repeat(31),
      'cd/' + 'cd'.repeat(31),
    ])
    assert.deepEqual(listObjects(tree.root), listObjects(tree))
  })

  it('gives the image digest the writer computed', () => {
    assert.deepEqual(imageDigest(written.image), written.digest)
  })
})

describe('upstream composefs test dumps', () => {
  const cases = upstreamCases().filter((c) => c.sha256)
  it(
    'image → tree → image is stable and the dump does not change',
    {skip: cases.length === 0 && 'no ../shared/testdata/composefs'},
    async () => {
      for (const c of cases) {
        const opts = c.version === undefined ? {} : {minVersion: c.version, maxVersion: c.version}
        const first = writeImage(await parseDump(c.dump), opts).image
        const t1 = readImage(first)
        const second = writeImage(t1.root, opts).image
        const t2 = readImage(second)
        assert.equal(dumpToString(t2.root), dumpToString(t1.root), c.name)
        assert.ok(writeImage(t2.root, opts).image.equals(second), c.name)
      }
    },
  )

  // Upstream's own reader, when someone has built it (COMPOSEFS_INFO=/path/to/composefs-info).
  const upstreamInfo = process.env.COMPOSEFS_INFO ?? 'composefs-info'
  const haveInfo = spawnSync(upstreamInfo, ['dump', '/dev/null']).error === undefined
  it(
    'prints the same dump as upstream composefs-info',
    {skip: !haveInfo && 'composefs-info not found (set COMPOSEFS_INFO)'},
    async () => {
      const trees: [string, FsNode][] = [
        ['rich', richTree()],
        ['small', smallTree()],
      ]
      for (const c of cases) trees.push([c.name, await parseDump(c.dump)])
      for (const [name, t] of trees) {
        const path = join(work, name + '.img')
        const {image} = writeImage(t)
        writeFileSync(path, image)
        const expected = spawnSync(upstreamInfo, ['dump', path], {maxBuffer: 1 << 30}).stdout.toString(
          'latin1',
        )
        assert.equal(dumpToString(readImage(image).root, {xattrOrder: 'tree'}), expected, name)
      }
    },
  )
})

/** A valid small image, a function that patches it, and what the reader must say. */
function refuses(image: Buffer, message: RegExp, opts: ReadOptions = {}): void {
  assert.throws(
    () => readImage(image, opts),
    (err: unknown) => {
      assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${String(err)}`)
      assert.match(err.message, message)
      assert.doesNotMatch(err.message, /\n/)
      return true
    },
  )
}

describe('hostile images', () => {
  const valid = (): Buffer => Buffer.from(writeImage(smallTree()).image)
  const dirent = (img: Buffer, dirPath: string, name: string) => {
    const d = direntsOf(img, lookupNid(img, dirPath)).find((e) => e.name === name)
    assert.ok(d)
    return d
  }

  it('the valid image itself reads', () => {
    assert.equal(readImage(valid()).entryCount, 6)
  })

  it('a directory entry pointing at its own directory is a cycle', () => {
    const img = valid()
    img.writeUInt32LE(lookupNid(img, '/a'), dirent(img, '/a', 'f').offset)
    refuses(img, /^image: directory cycle at nid \d+$/)
  })

  it('a directory entry pointing at the root is a cycle', () => {
    const img = valid()
    img.writeUInt32LE(rootNid(img), dirent(img, '/a', 'f').offset)
    refuses(img, /directory cycle/)
  })

  it('a directory with two names is refused', () => {
    const img = valid()
    img.writeUInt32LE(lookupNid(img, '/a'), dirent(img, '/', 's').offset)
    refuses(img, /directory with more than one name/)
  })

  it('"." and ".." must point to the directory and its parent', () => {
    let img = valid()
    img.writeUInt32LE(rootNid(img), dirent(img, '/a', '.').offset)
    refuses(img, /"\." does not point/)
    img = valid()
    img.writeUInt32LE(lookupNid(img, '/a'), dirent(img, '/a', '..').offset)
    refuses(img, /"\.\." does not point/)
  })

  it('a root nid inside the header is refused', () => {
    const img = valid()
    img.writeUInt16LE(0, SUPER_OFFSET + Super.rootNid)
    refuses(img, /inode overlaps the header or superblock at nid 0/)
  })

  it('a nid beyond the end of the image is refused', () => {
    const img = valid()
    img.writeUInt32LE(0x7fffffff, dirent(img, '/', 'big').offset)
    refuses(img, /inode beyond the end of the image at nid 2147483647/)
    const img2 = valid()
    img2.writeUInt32LE(1, dirent(img2, '/', 's').offset + 4) // a nid over 2^32
    refuses(img2, /dirent nid out of range/)
  })

  it('a truncated image is refused', () => {
    const img = valid()
    refuses(img.subarray(0, img.length - 4096), /^image: truncated: superblock says \d+ blocks/)
    refuses(img.subarray(0, 100), /too small/)
  })

  it('names out of order, with a slash, or overlapping are refused', () => {
    let img = valid()
    img[dirent(img, '/', 'big').nameOffset] = 'A'.charCodeAt(0)
    refuses(img, /directory entries out of order/)
    img = valid()
    img[dirent(img, '/', 's').nameOffset] = '/'.charCodeAt(0)
    refuses(img, /invalid character in a name/)
    img = valid()
    img.writeUInt16LE(0xfff0, dirent(img, '/', 'big').offset + 8)
    refuses(img, /bad dirent name offset/)
    img = valid()
    img.writeUInt16LE(13, dirent(img, '/', '.').offset + 8) // first nameoff gives the dirent count
    refuses(img, /bad dirent count/)
  })

  it('a symlink target over PATH_MAX is refused', () => {
    const img = valid()
    img.writeUInt32LE(5000, inodeAt(img, lookupNid(img, '/s')).offset + Compact.size)
    refuses(img, /symlink target longer than 4095/)
  })

  it('inline content over 5000 bytes is refused', () => {
    const img = valid()
    img.writeUInt32LE(6000, inodeAt(img, lookupNid(img, '/a/f')).offset + Compact.size)
    refuses(img, /inline content of 6000 bytes is over the limit/)
  })

  it('a directory whose blocks lie past the end is refused', () => {
    const img = valid()
    const ino = inodeAt(img, lookupNid(img, '/a'))
    img.writeUInt16LE(0, ino.offset + Compact.format) // flat plain: data in blocks
    img.writeUInt32LE(0x100000, ino.offset + Compact.u)
    refuses(img, /directory data blocks beyond the end of the image/)
  })

  it('xattr entries running past their area or with unknown prefixes are refused', () => {
    let img = valid()
    const f = inodeAt(img, lookupNid(img, '/a/f'))
    img.writeUInt16LE(0xffff, f.xattrOffset + 12 + 2)
    refuses(img, /xattr entry beyond its area/)
    img = valid()
    img[f.xattrOffset + 12 + 1] = 0x7f
    refuses(img, /unknown xattr name prefix 127/)
    img = valid()
    img[f.xattrOffset + 4] = 200 // shared xattr count
    refuses(img, /shared xattr count larger than the xattr area/)
  })

  it('bad magic numbers and unknown versions are refused', () => {
    let img = valid()
    img.writeUInt32LE(0x12345678, CfsHeader.magic)
    refuses(img, /not a composefs image/)
    img = valid()
    img.writeUInt32LE(2, CfsHeader.composefsVersion)
    refuses(img, /unsupported composefs format version 2/)
    img = valid()
    img.writeUInt32LE(0, SUPER_OFFSET + Super.magic)
    refuses(img, /bad EROFS superblock magic/)
    img = valid()
    img[SUPER_OFFSET + Super.blkszbits] = 16
    refuses(img, /unsupported block size/)
  })

  it('times and sizes beyond 2^53 are refused', () => {
    const t = smallTree()
    t.children!.get('big')!.mtimeSec = 1_800_000_000 // not the oldest mtime: an extended inode
    const img = Buffer.from(writeImage(t).image)
    const big = inodeAt(img, lookupNid(img, '/big'))
    assert.ok(big.extended)
    img.writeBigInt64LE(2n ** 62n, big.offset + Extended.mtime)
    refuses(img, /inode mtime out of range/)
    img.writeBigInt64LE(5n, big.offset + Extended.mtime)
    img.writeBigUInt64LE(2n ** 60n, big.offset + Extended.size)
    refuses(img, /inode size out of range/)
  })

  it('directories sharing data blocks are refused (a small image must not expand into a huge tree)', () => {
    const root = dir()
    const shared = dir()
    root.addChild('shared', shared)
    for (let i = 0; i < 300; i++)
      shared.addChild(`entry-with-a-fairly-long-name-${String(i).padStart(4, '0')}`, inlineFile('x'))
    for (let i = 0; i < 100; i++) root.addChild(`e${String(i).padStart(3, '0')}`, dir())
    const img = Buffer.from(writeImage(root).image)
    const sharedIno = inodeAt(img, lookupNid(img, '/shared'))
    assert.ok(sharedIno.size > 3 * 4096)
    // Point every empty directory at the shared directory's 2nd and 3rd blocks (no "." there).
    for (let i = 0; i < 100; i++) {
      const ino = inodeAt(img, lookupNid(img, `/e${String(i).padStart(3, '0')}`))
      img.writeUInt16LE(0, ino.offset + Compact.format) // compact, flat plain
      img.writeUInt32LE(2 * 4096, ino.offset + Compact.size)
      img.writeUInt32LE(sharedIno.blkaddr + 1, ino.offset + Compact.u)
    }
    refuses(img, /data blocks shared between inodes/)
  })

  it('fuzz: a NUL byte inside a symlink target is refused, not cut short', () => {
    const img = valid()
    img[inodeAt(img, lookupNid(img, '/s')).tailOffset + 1] = 0
    refuses(img, /NUL byte in a symlink target/)
  })

  it('fuzz: a NUL byte inside a redirect is refused, not cut short', () => {
    const img = valid()
    const big = inodeAt(img, lookupNid(img, '/big'))
    const at = img.indexOf(Buffer.from('/42/4242'), big.xattrOffset)
    assert.ok(at > 0 && at < big.tailOffset)
    img[at + 5] = 0
    refuses(img, /NUL byte in a redirect/)
  })

  it('an invalid file type is refused', () => {
    const img = valid()
    img.writeUInt16LE(0o170644, inodeAt(img, lookupNid(img, '/a/f')).offset + Compact.mode)
    refuses(img, /invalid file mode 0170644/)
  })

  it('limits on depth, entries, inodes and xattrs apply', () => {
    const {image} = writeImage(richTree())
    refuses(image, /directories nested deeper than 10/, {limits: {maxDepth: 10}})
    refuses(image, /more than 50 entries/, {limits: {maxEntries: 50}})
    refuses(image, /more than 50 inodes/, {limits: {maxInodes: 50}})
    refuses(image, /more than 3 xattrs/, {limits: {maxXattrEntries: 3}})
    refuses(image, /name longer than 10/, {limits: {maxNameLength: 10}})
  })

  it('a tree deeper than the default limit is refused without overflowing the stack', () => {
    const root = dir()
    let d = root
    for (let i = 0; i < 2100; i++) {
      const c = dir()
      d.addChild('d', c)
      d = c
    }
    d.addChild('f', externalFile(1, 1))
    refuses(writeImage(root).image, /directories nested deeper than 2048/)
  })
})
