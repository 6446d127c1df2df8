// composefs-dump(5): the parser against upstream's test dumps and hostile input, the writer as
// a fixed point of parse → write, escaping as a property.
import {describe, it} from 'node:test'
import assert from 'node:assert/strict'
import {Readable} from 'node:stream'
import {createReadStream, existsSync} from 'node:fs'
import {join} from 'node:path'
import {createGunzip} from 'node:zlib'
import fc from 'fast-check'

import {InvalidInputError} from '../src/errors.js'
import {
  FsNode,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
  walk,
} from '../src/tree/node.js'
import {
  ESCAPE_EQUAL,
  ESCAPE_LONE_DASH,
  escapeBytes,
  escapeString,
  unescapeBytes,
  unescapeString,
} from '../src/format/dump/escape.js'
import {DUMP_MAX_LINE_BYTES, parseDump, parseDumpSync} from '../src/format/dump/parse.js'
import {xattrSpace} from '../src/format/erofs/xattr-space.js'
import {dumpToString, writeDump} from '../src/format/dump/write.js'
import {upstreamCases, upstreamDir} from './helpers/upstream.js'

const cases = upstreamCases()
const noUpstream = cases.length === 0 && `no upstream test dumps at ${upstreamDir}`
/** Upstream parses these three leniently (see the testdata README); all others parse strictly. */
const LENIENT = new Set(['no-newline.dump', 'longlink.dump', 'honggfuzz-longlink-unterminated.dump'])

const ROOT = '/ 4096 40755 2 0 0 0 0.0 - - -\n'

/** Assert that parsing `dump` fails with an InvalidInputError naming `line` and matching `re`. */
async function assertRefused(
  dump: string | Buffer | AsyncIterable<Buffer>,
  line: number,
  re: RegExp,
  strict = false,
): Promise<void> {
  await assert.rejects(parseDump(dump, {strict}), (err: unknown) => {
    assert.ok(err instanceof InvalidInputError, `expected InvalidInputError, got ${String(err)}`)
    assert.match(err.message, new RegExp(`^dump line ${line}: `))
    assert.match(err.message, re)
    assert.ok(!err.message.includes('\n'), 'one-line message')
    return true
  })
}

function roundTrip(dump: Buffer | string): string {
  const first = dumpToString(parseDumpSync(dump))
  const second = dumpToString(parseDumpSync(first, {strict: true}))
  assert.equal(second, first)
  return first
}

function byPath(root: FsNode): Map<string, FsNode> {
  const m = new Map<string, FsNode>()
  for (const n of walk(root)) m.set(n.path(), n)
  return m
}

describe('upstream composefs test dumps', {skip: noUpstream}, () => {
  for (const c of cases) {
    if (c.name.startsWith('should-fail-')) {
      it(`refuses ${c.name}`, async () => {
        for (const strict of [false, true]) {
          await assert.rejects(parseDump(c.dump, {strict}), (err: unknown) => {
            assert.ok(err instanceof InvalidInputError, String(err))
            assert.match(err.message, /^dump line \d+: \S/)
            return true
          })
        }
      })
      continue
    }
    it(`parses ${c.name}${LENIENT.has(c.name) ? ' (lenient only)' : ' (strict too)'}`, async () => {
      const root = await parseDump(c.dump)
      assert.ok(root.isDir())
      if (LENIENT.has(c.name)) {
        await assert.rejects(parseDump(c.dump, {strict: true}), InvalidInputError)
      } else {
        await parseDump(c.dump, {strict: true})
      }
    })
    it(`parse → write → parse → write is a fixed point for ${c.name}`, () => {
      roundTrip(c.dump)
    })
  }

  it('streams give the same tree as buffers (gzip stream, odd chunk sizes)', async () => {
    for (const c of cases.filter((c) => !c.name.startsWith('should-fail-'))) {
      const expected = dumpToString(parseDumpSync(c.dump))
      const file = join(upstreamDir, c.name)
      const stream = c.name.endsWith('.gz')
        ? createReadStream(file).pipe(createGunzip())
        : createReadStream(file)
      assert.equal(dumpToString(await parseDump(stream)), expected, c.name)
      const chunks: Buffer[] = []
      for (let i = 0, n = 1; i < c.dump.length; i += n, n = (n * 7 + 3) % 4099)
        chunks.push(c.dump.subarray(i, i + n))
      assert.equal(dumpToString(await parseDump(Readable.from(chunks))), expected, c.name)
    }
  })

  it('special.dump: escapes, devices, inline content and xattrs as upstream builds them', async () => {
    const c = cases.find((c) => c.name === 'special.dump')
    assert.ok(c)
    const nodes = byPath(await parseDump(c.dump))
    const root = nodes.get('/')!
    assert.deepEqual(
      root.xattrs.map((x) => [x.key, x.value.toString('latin1')]),
      [
        ['trusted.foo1', 'bar-1'],
        ['user.foo2', 'bar-2'],
      ],
    )
    const blk = nodes.get('/blockdev')!
    assert.equal(blk.type, S_IFBLK)
    assert.equal(blk.rdev, 107690)
    assert.equal(nodes.get('/chardev')!.rdev, 10769)
    assert.equal(nodes.get('/fifo')!.type, S_IFIFO)
    const inline = nodes.get('/inline')!
    assert.equal(inline.size, 15)
    assert.equal(inline.content!.toString('latin1'), 'FOOBAR\nINAFILE\n')
    assert.equal(inline.payload, null)
    assert.equal(nodes.get('/inline-large1')!.content!.length, 4095)
    assert.equal(nodes.get('/escaped-xattr')!.getXattr('trusted.overlay.redirect')!.toString(), '/foo\n')
    assert.equal(inline.mtimeSec, 1633950376)
  })

  it('config-with-hard-link: hardlinks point at their target, whose nlink is left alone', async () => {
    const c = cases.find((c) => c.name === 'config-with-hard-link.dump.gz')
    assert.ok(c)
    const nodes = byPath(await parseDump(c.dump))
    const link = nodes.get('/usr/bin/ls-hardlink')!
    const ls = nodes.get('/usr/bin/ls')!
    assert.equal(link.linkTo, ls)
    assert.equal(link.target(), ls)
    const lsLine = c.dump
      .toString('latin1')
      .split('\n')
      .find((l) => l.startsWith('/usr/bin/ls '))!
    assert.equal(ls.nlink, Number(lsLine.split(' ')[3]))
  })

  it('lenient cases: symlink size is the target length; a cut-short line keeps what upstream keeps', async () => {
    const longlink = byPath(await parseDump(cases.find((c) => c.name === 'longlink.dump')!.dump))
    const big = longlink.get('/big-but-not-max-link')!
    assert.equal(big.type, S_IFLNK)
    assert.equal(big.size, 4070)
    assert.equal(big.payload!.length, 4070)

    const cut = byPath(
      await parseDump(cases.find((c) => c.name === 'honggfuzz-longlink-unterminated.dump')!.dump),
    )
    const n = cut.get('/chardev')!
    // Mode 20720777: only the low 16 bits reach the image, and they say symlink.
    assert.equal(n.mode, 0o120777)
    assert.equal(n.size, 4095)
    assert.equal(n.content, null)
    assert.equal(n.digest, null)

    const big2 = byPath(await parseDump(cases.find((c) => c.name === 'bigfile.dump')!.dump))
    assert.equal(big2.get('/bigfile')!.size, 9000000000000000)
  })
})

describe('dump parser: semantics mirrored from upstream', () => {
  it('symlink size comes from its target; content must match SIZE and is dropped for symlinks', async () => {
    const root = await parseDump(ROOT + '/l 3 120777 1 0 0 0 0.0 target abc -\n')
    const l = root.children!.get('l')!
    assert.equal(l.size, 6)
    assert.equal(l.content, null)
    assert.equal(l.payload, 'target')
    await assertRefused(
      ROOT + '/l 6 120777 1 0 0 0 0.0 target abc -\n',
      2,
      /content is 3 bytes but size is 6/,
    )
  })

  it('empty content means no content; rdev is kept only for devices', async () => {
    const root = await parseDump(
      ROOT +
        '/f 1 100644 1 0 0 7 0.0 - \\x2d -\n/e 0 100644 1 0 0 0 1.5 -  -\n/c 0 20644 1 0 0 259 0.0 - - -\n',
    )
    const f = root.children!.get('f')!
    assert.equal(f.content!.toString(), '-')
    assert.equal(f.rdev, 0)
    const e = root.children!.get('e')!
    assert.equal(e.content, null)
    assert.equal(e.payload, null)
    assert.equal(e.mtimeSec, 1)
    assert.equal(e.mtimeNsec, 5)
    assert.equal(root.children!.get('c')!.rdev, 259)
  })

  it('an empty PAYLOAD field is an empty payload, not an absent one', async () => {
    const root = await parseDump(ROOT + '/f 0 100644 1 0 0 0 0.0  - -\n')
    assert.equal(root.children!.get('f')!.payload, '')
    assert.match(dumpToString(root), /^\/f 0 100644 1 0 0 0 0\.0  - -$/m)
  })

  it('a repeated xattr key replaces the value and reorders like lcfs_node_unset_xattr', async () => {
    const root = await parseDump(ROOT.replace('-\n', '- a=1 b=2 c=3 a=4\n'))
    assert.deepEqual(
      root.xattrs.map((x) => `${x.key}=${x.value}`),
      ['c=3', 'b=2', 'a=4'],
    )
  })

  it('xattr space: accepts exactly 32767 bytes by upstream formula, refuses one more', async () => {
    const ok = ROOT.replace('-\n', `- a=${'v'.repeat(32767 - 12 - 7 - 1)}\n`)
    const root = await parseDump(ok)
    assert.equal(xattrSpace(root.xattrs), 32767)
    await assertRefused(
      ROOT.replace('-\n', `- a=${'v'.repeat(32767 - 12 - 7)}\n`),
      1,
      /more than 32767 bytes/,
    )
    // The header is counted once; a replaced value frees its space.
    const two = ROOT.replace('-\n', `- a=${'v'.repeat(16000)} a=x b=${'w'.repeat(16000)}\n`)
    assert.equal(xattrSpace((await parseDump(two)).xattrs), 12 + 7 + 1 + 1 + 7 + 1 + 16000)
  })

  it('largest file: 2^53 bytes parse, one more is EFBIG', async () => {
    const root = await parseDump(ROOT + `/f ${2 ** 53} 100644 1 0 0 0 0.0 - - -\n`)
    assert.equal(root.children!.get('f')!.size, 2 ** 53)
    await assertRefused(ROOT + `/f ${2n ** 53n + 1n} 100644 1 0 0 0 0.0 - - -\n`, 2, /absurd size .*EFBIG/)
  })

  it('hardlink lines ignore every field but the target; links may come before their target', async () => {
    const root = await parseDump(
      ROOT +
        '/h garbage @100644 x y z w nonsense /t/f - nothex not=parsed\n' +
        '/t 0 40755 2 0 0 0 0.0 - - -\n' +
        '/t/f 5 100644 3 1 2 0 9.9 - hello -\n' +
        '/h2 0 @100644 0 0 0 0 0.0 /h - -\n',
    )
    const nodes = byPath(root)
    const f = nodes.get('/t/f')!
    assert.equal(nodes.get('/h')!.linkTo, f)
    assert.equal(nodes.get('/h2')!.linkTo, nodes.get('/h'))
    assert.equal(nodes.get('/h2')!.target(), f)
    assert.equal(f.nlink, 3)
    // The writer names the first path of the inode in traversal order (/h) as the real file.
    assert.equal(
      dumpToString(root),
      ROOT +
        '/h 5 100644 3 1 2 0 9.9 - hello -\n' +
        '/h2 5 @100644 3 1 2 0 9.9 /h hello -\n' +
        '/t 0 40755 2 0 0 0 0.0 - - -\n' +
        '/t/f 5 @100644 3 1 2 0 9.9 /h hello -\n',
    )
    roundTrip(dumpToString(root))
  })

  it('repeated slashes and a missing leading slash are accepted like upstream', async () => {
    const nodes = byPath(
      await parseDump(ROOT + 'd 0 40755 2 0 0 0 0.0 - - -\n//d///f 0 100644 1 0 0 0 0.0 - - -\n'),
    )
    assert.ok(nodes.get('/d/f'))
  })

  it('mode bits beyond 16 are dropped (as the image drops them), type taken from the low bits', async () => {
    const root = await parseDump(ROOT + '/s 0 20720777 1 0 0 0 0.0 x - -\n')
    assert.equal(root.children!.get('s')!.mode, 0o120777)
  })

  it('sockets, fifos and devices keep their type', async () => {
    const root = await parseDump(
      ROOT + '/s 0 140755 1 0 0 0 0.0 - - -\n/p 0 10644 1 0 0 0 0.0 - - -\n/c 0 20644 1 0 0 0 0.0 - - -\n',
    )
    assert.equal(root.children!.get('s')!.type, S_IFSOCK)
    assert.equal(root.children!.get('p')!.type, S_IFIFO)
    assert.equal(root.children!.get('c')!.type, S_IFCHR)
  })
})

describe('dump parser: refuses bad and hostile input with the line number', () => {
  const file = (fields: string) => ROOT + `/f ${fields}\n`
  const bad: [string, string | Buffer, number, RegExp][] = [
    [
      '.. in the middle of a path',
      ROOT + '/a 0 40755 2 0 0 0 0.0 - - -\n/a/../b 0 100644 1 0 0 0 0.0 - - -\n',
      3,
      /invalid \. or \.\. in path "\/a\/\.\.\/b"/,
    ],
    [
      '. in the middle of a path',
      ROOT + '/a 0 40755 2 0 0 0 0.0 - - -\n/a/./b 0 100644 1 0 0 0 0.0 - - -\n',
      3,
      /invalid \. or \.\. in path/,
    ],
    ['. at the start of a path', ROOT + '/./b 0 100644 1 0 0 0 0.0 - - -\n', 2, /invalid \. or \.\. in path/],
    ['.. as the last name', ROOT + '/.. 0 40755 2 0 0 0 0.0 - - -\n', 2, /invalid \. or \.\. in path/],
    [
      'a duplicate name',
      ROOT + '/a 0 100644 1 0 0 0 0.0 - - -\n/a 0 100644 1 0 0 0 0.0 - - -\n',
      3,
      /duplicate path "\/a"/,
    ],
    [
      'a duplicate through repeated slashes',
      ROOT + '/a 0 100644 1 0 0 0 0.0 - - -\n//a 0 100644 1 0 0 0 0.0 - - -\n',
      3,
      /duplicate path/,
    ],
    ['a second root', ROOT + ROOT, 2, /duplicate root/],
    ['a root that is not a directory', '/ 0 100644 1 0 0 0 0.0 - - -\n', 1, /root must be a directory/],
    ['an entry before the root', '/a 0 100644 1 0 0 0 0.0 - - -\n' + ROOT, 1, /before the root/],
    ['an empty dump', '', 1, /no root/],
    ['an empty line', ROOT + '\n', 2, /empty path/],
    [
      'a missing parent',
      ROOT + '/a/b 0 100644 1 0 0 0 0.0 - - -\n',
      2,
      /parent directory missing for "\/a\/b"/,
    ],
    [
      'a parent that is a file',
      ROOT + '/a 0 100644 1 0 0 0 0.0 - - -\n/a/b 0 100644 1 0 0 0 0.0 - - -\n',
      3,
      /not a directory/,
    ],
    [
      'an empty name (trailing slash)',
      ROOT + '/a 0 40755 2 0 0 0 0.0 - - -\n/a/ 0 40755 2 0 0 0 0.0 - - -\n',
      3,
      /empty file name/,
    ],
    ['a name of 256 bytes', ROOT + `/${'n'.repeat(256)} 0 100644 1 0 0 0 0.0 - - -\n`, 2, /longer than 255/],
    [
      'an embedded NUL byte',
      ROOT + '/a\0b 0 100644 1 0 0 0 0.0 - - -\n',
      2,
      /embedded NUL byte at position 2/,
    ],
    ['an escaped NUL in a path', ROOT + '/a\\x00b 0 100644 1 0 0 0 0.0 - - -\n', 2, /NUL byte in path/],
    ['an escaped NUL in a payload', file('0 100644 1 0 0 0 0.0 a\\x00b - -'), 2, /NUL byte in payload/],
    [
      'an escaped NUL in an xattr key',
      file('0 100644 1 0 0 0 0.0 - - - user.a\\x00b=1'),
      2,
      /NUL byte in xattr key/,
    ],
    [
      'an unknown escape',
      file('0 100644 1 0 0 0 0.0 a\\qb - -'),
      2,
      /bad escape in payload: unsupported escape \\q/,
    ],
    ['a cut-off hex escape', file('0 100644 1 0 0 0 0.0 a\\x1 - -'), 2, /no hex digits/],
    ['bad hex digits', file('0 100644 1 0 0 0 0.0 a\\xzz - -'), 2, /invalid hex digits/],
    ['a trailing backslash', ROOT + '/a\\ 0 100644 1 0 0 0 0.0 - - -\n', 2, /no character after escape/],
    ['a size above 2^53', file('9007199254740993 100644 1 0 0 0 0.0 - - -'), 2, /absurd size/],
    [
      'an absurd size on a directory',
      ROOT + '/d 99999999999999999999 40755 2 0 0 0 0.0 - - -\n',
      2,
      /absurd size/,
    ],
    [
      'a million-digit size',
      file(`${'9'.repeat(1_000_000)} 100644 1 0 0 0 0.0 - - -`),
      2,
      /size "9{30}\.\.\." out of range/,
    ],
    [
      'a size with many leading zeros',
      file(`${'0'.repeat(100_000)}9007199254740993 100644 1 0 0 0 0.0 - - -`),
      2,
      /absurd size 9007199254740993/,
    ],
    ['a negative size', file('-1 100644 1 0 0 0 0.0 - - -'), 2, /invalid size "-1"/],
    ['a size with a sign', file('+1 100644 1 0 0 0 0.0 - - -'), 2, /invalid size/],
    ['a hex number', file('0x10 100644 1 0 0 0 0.0 - - -'), 2, /invalid size/],
    ['an empty number', file(' 100644 1 0 0 0 0.0 - - -'), 2, /invalid size ""/],
    ['a non-octal mode', file('0 100648 1 0 0 0 0.0 - - -'), 2, /invalid mode/],
    ['a mode without file type', file('0 644 1 0 0 0 0.0 - - -'), 2, /invalid file type in mode 644/],
    ['a mode beyond 32 bits', file('0 400000100644 1 0 0 0 0.0 - - -'), 2, /mode .* out of range/],
    ['a uid beyond 32 bits', file('0 100644 1 4294967296 0 0 0.0 - - -'), 2, /uid 4294967296 out of range/],
    ['an invalid gid', file('0 100644 1 5 x 0 0.0 - - -'), 2, /invalid gid "x"/],
    ['an invalid rdev', file('0 100644 1 5 0 x 0.0 - - -'), 2, /invalid rdev/],
    [
      'a device number beyond 32 bits',
      ROOT + '/c 0 20644 1 0 0 4294967296 0.0 - - -\n',
      2,
      /rdev .* out of range/,
    ],
    ['an invalid nlink', file('0 100644 one 0 0 0 0.0 - - -'), 2, /invalid nlink/],
    ['an mtime without nanoseconds', file('0 100644 1 0 0 0 5 - - -'), 2, /invalid mtime nanoseconds ""/],
    [
      'a fractional mtime with two dots',
      file('0 100644 1 0 0 0 1.2.3 - - -'),
      2,
      /invalid mtime nanoseconds "2\.3"/,
    ],
    ['a missing field', ROOT + '/f 0\n', 2, /invalid mode ""/],
    [
      'content not matching size',
      file('4 100644 1 0 0 0 0.0 - abc -'),
      2,
      /content is 3 bytes but size is 4/,
    ],
    [
      'inline content over 5000 bytes',
      file(`5001 100644 1 0 0 0 0.0 - ${'c'.repeat(5001)} -`),
      2,
      /inline content of 5001 bytes/,
    ],
    [
      'a payload of 4096 bytes',
      file(`0 100644 1 0 0 0 0.0 ${'p'.repeat(4096)} - -`),
      2,
      /payload is 4096 bytes/,
    ],
    [
      'a symlink target of 4096 bytes',
      ROOT + `/l 1 120777 1 0 0 0 0.0 ${'t'.repeat(4096)} - -\n`,
      2,
      /symlink target is 4096 bytes/,
    ],
    ['a symlink without target', ROOT + '/l 0 120777 1 0 0 0 0.0 - - -\n', 2, /has no target/],
    ['a short digest', file('1 100644 1 0 0 0 0.0 - - abcd'), 2, /invalid digest "abcd"/],
    ['a non-hex digest', file(`1 100644 1 0 0 0 0.0 - - ${'g'.repeat(64)}`), 2, /invalid digest/],
    ['an empty digest on an external file', file('1 100644 1 0 0 0 0.0 ab/cd -'), 2, /invalid digest ""/],
    ['a CRLF line end', ROOT.replace('\n', '\r\n'), 1, /invalid digest "-\\r"/],
    ['an empty xattr key', file('0 100644 1 0 0 0 0.0 - - - =v'), 2, /empty xattr key/],
    [
      'an xattr key of 256 bytes',
      file(`0 100644 1 0 0 0 0.0 - - - ${'k'.repeat(256)}=v`),
      2,
      /xattr key of 256 bytes/,
    ],
    ['an xattr without =', file('0 100644 1 0 0 0 0.0 - - - user.a'), 2, /missing = in xattr "user\.a"/],
    [
      'two spaces between xattrs',
      file('0 100644 1 0 0 0 0.0 - - - user.a=1  user.b=2'),
      2,
      /missing = in xattr ""/,
    ],
    [
      'xattrs longer than 65535 bytes',
      file(`0 100644 1 0 0 0 0.0 - - - a=${'v'.repeat(65534)}`),
      2,
      /xattrs take 65536 bytes/,
    ],
    [
      'xattrs over the space limit',
      file(`0 100644 1 0 0 0 0.0 - - - a=${'v'.repeat(20000)} b=${'v'.repeat(20000)}`),
      2,
      /more than 32767 bytes of space \(at "b"\)/,
    ],
    [
      'a hardlink to a missing path',
      ROOT + '/h 0 @100644 1 0 0 0 0.0 /nope - -\n',
      2,
      /hardlink target "\/nope" not found/,
    ],
    ['a hardlink without target', ROOT + '/h 0 @100644 1 0 0 0 0.0 - - -\n', 2, /has no target path/],
    [
      'a hardlink to itself',
      ROOT + '/x 0 100644 1 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /h - -\n',
      3,
      /points to itself/,
    ],
    [
      'a hardlink line with a directory mode',
      ROOT + '/h 0 @40755 1 0 0 0 0.0 / - -\n',
      2,
      /directories cannot be hardlinked/,
    ],
    ['a hardlink to the root', ROOT + '/h 0 @100644 1 0 0 0 0.0 / - -\n', 2, /points to a directory/],
    [
      'a hardlink to a directory',
      ROOT + '/d 0 40755 2 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /d - -\n',
      3,
      /points to a directory/,
    ],
    [
      'a hardlink through a hardlink to a directory',
      ROOT +
        '/d 0 40755 2 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /d - -\n/i 0 @100644 1 0 0 0 0.0 /h - -\n',
      3,
      /points to a directory/,
    ],
    [
      'a hardlink cycle',
      ROOT + '/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /a - -\n',
      2,
      /hardlink cycle/,
    ],
    [
      'a longer hardlink cycle',
      ROOT +
        '/a 0 @100644 1 0 0 0 0.0 /b - -\n/b 0 @100644 1 0 0 0 0.0 /c - -\n/c 0 @100644 1 0 0 0 0.0 /a - -\n',
      2,
      /hardlink cycle/,
    ],
    [
      'a hardlink target with ..',
      ROOT +
        '/d 0 40755 2 0 0 0 0.0 - - -\n/f 0 100644 1 0 0 0 0.0 - - -\n/h 0 @100644 1 0 0 0 0.0 /d/../f - -\n',
      4,
      /invalid \. or \.\. in hardlink target/,
    ],
    [
      'a line over the length limit',
      ROOT + '/f ' + 'x'.repeat(DUMP_MAX_LINE_BYTES) + '\n',
      2,
      /line longer than/,
    ],
  ]
  for (const [what, dump, line, re] of bad) {
    it(`refuses ${what}`, async () => {
      await assertRefused(dump, line, re)
    })
  }

  it('refuses an endless line from a stream without holding it all', async () => {
    async function* endless() {
      yield Buffer.from(ROOT)
      const chunk = Buffer.alloc(64 * 1024, 0x61)
      for (;;) yield chunk
    }
    await assertRefused(endless() as AsyncIterable<Buffer>, 2, /line longer than/)
  })

  describe('strict mode (upstream CFS_PARSE_STRICT)', () => {
    it('refuses a missing final newline', async () => {
      await assertRefused(ROOT + '/a 0 100644 1 0 0 0 0.0 - - -', 2, /missing newline/, true)
      await parseDump(ROOT + '/a 0 100644 1 0 0 0 0.0 - - -')
    })
    it('refuses a nonzero rdev on a non-device', async () => {
      await assertRefused(ROOT + '/a 0 100644 1 0 0 5 0.0 - - -\n', 2, /nonzero rdev 5/, true)
      await parseDump(ROOT + '/a 0 100644 1 0 0 5 0.0 - - -\n')
    })
    it('refuses a symlink whose size differs from its target', async () => {
      await assertRefused(ROOT + '/l 2 120777 1 0 0 0 0.0 abc - -\n', 2, /symlink size 2 differs/, true)
      await parseDump(ROOT + '/l 2 120777 1 0 0 0 0.0 abc - -\n')
    })
    it('refuses a symlink with content', async () => {
      await assertRefused(ROOT + '/l 3 120777 1 0 0 0 0.0 abc xyz -\n', 2, /cannot have content/, true)
      await parseDump(ROOT + '/l 3 120777 1 0 0 0 0.0 abc xyz -\n')
    })
  })
})

describe('dump writer', () => {
  it('prints like composefs-info dump: escapes, lone dashes, sorted children and xattrs', async () => {
    const root = new FsNode(S_IFDIR | 0o755)
    root.nlink = 3
    root.size = 4096
    root.xattrs.push(
      {key: 'user.z', value: Buffer.from('1')},
      {key: 'security.a=b', value: Buffer.from('x=y z')},
    )
    const dir = new FsNode(S_IFDIR | 0o700)
    root.addChild('a dir', dir)
    const file = new FsNode(S_IFREG | 0o644)
    file.size = 1
    file.content = Buffer.from('-')
    file.mtimeSec = 12
    file.mtimeNsec = 34
    dir.addChild('\xe9\n\\', file)
    const link = new FsNode(S_IFLNK | 0o777)
    link.payload = '-'
    link.size = 1
    root.addChild('-', link)
    const ext = new FsNode(S_IFREG | 0o600)
    ext.size = 100000
    ext.payload = 'ab/cd'
    ext.digest = Buffer.alloc(32, 0xab)
    ext.uid = 1000
    ext.gid = 1001
    ext.xattrs.push({key: 'user.empty', value: Buffer.alloc(0)})
    root.addChild('ext', ext)
    const dev = new FsNode(S_IFCHR | 0o600)
    dev.rdev = 0x0103
    root.addChild('dev', dev)

    assert.equal(
      dumpToString(root),
      '/ 4096 40755 3 0 0 0 0.0 - - - security.a\\x3db=x\\x3dy\\x20z user.z=1\n' +
        '/- 1 120777 1 0 0 0 0.0 \\x2d - -\n' +
        '/a\\x20dir 0 40700 1 0 0 0 0.0 - - -\n' +
        '/a\\x20dir/\\xe9\\n\\\\ 1 100644 1 0 0 0 12.34 - \\x2d -\n' +
        '/dev 0 20600 1 0 0 259 0.0 - - -\n' +
        `/ext 100000 100600 1 1000 1001 0 0.0 ab/cd - ${'ab'.repeat(32)} user.empty=\n`,
    )
    const lines: string[] = []
    writeDump(root, (l) => lines.push(l))
    assert.equal(lines.length, 6)
    assert.ok(lines.every((l) => l.endsWith('\n') && l.indexOf('\n') === l.length - 1))
    const reparsed = byPath(await parseDump(lines.join(''), {strict: true}))
    assert.equal(reparsed.get('/a dir/\xe9\n\\')!.content!.toString(), '-')
    assert.equal(reparsed.get('/-')!.payload, '-')
    assert.deepEqual(reparsed.get('/')!.getXattr('security.a=b'), Buffer.from('x=y z'))
    assert.deepEqual(reparsed.get('/ext')!.getXattr('user.empty'), Buffer.alloc(0))
  })

  it("keeps the tree's xattr order when asked", () => {
    const root = new FsNode(S_IFDIR | 0o755)
    root.xattrs.push({key: 'b', value: Buffer.from('1')}, {key: 'a', value: Buffer.from('2')})
    assert.match(dumpToString(root), / a=2 b=1\n$/)
    assert.match(dumpToString(root, {xattrOrder: 'tree'}), / b=1 a=2\n$/)
  })

  it('refuses a tree with a hardlink cycle', () => {
    const root = new FsNode(S_IFDIR | 0o755)
    const a = new FsNode(S_IFREG | 0o644)
    const b = new FsNode(S_IFREG | 0o644)
    a.linkTo = b
    b.linkTo = a
    root.addChild('a', a)
    root.addChild('b', b)
    assert.throws(() => dumpToString(root), InvalidInputError)
  })
})

describe('escaping', () => {
  const flagsArb = fc.constantFrom(0, ESCAPE_EQUAL, ESCAPE_LONE_DASH, ESCAPE_EQUAL | ESCAPE_LONE_DASH)
  // Bytes biased towards the interesting ones.
  const byteArb = fc.oneof(
    fc.integer({min: 0, max: 255}),
    fc.constantFrom(0x20, 0x0a, 0x0d, 0x09, 0x5c, 0x3d, 0x2d, 0x78, 0x00, 0x7f, 0x80, 0xff),
  )
  const bytesArb = fc.array(byteArb, {maxLength: 40}).map((a) => Buffer.from(a))

  it('unescape(escape(b)) = b, and escaped text is printable ASCII without spaces', () => {
    fc.assert(
      fc.property(bytesArb, flagsArb, (b, flags) => {
        const e = escapeBytes(b, flags)
        assert.match(e, /^[\x21-\x7e]*$/)
        if (flags & ESCAPE_EQUAL) assert.ok(!e.includes('='))
        if (flags & ESCAPE_LONE_DASH) assert.notEqual(e, '-')
        assert.deepEqual(unescapeBytes(Buffer.from(e, 'latin1')), b)
        assert.equal(escapeString(b.toString('latin1'), flags), e)
        assert.deepEqual(unescapeString(e), b)
      }),
      {numRuns: 2000},
    )
  })

  it('unescape accepts upper-case hex and never reads outside its range', () => {
    assert.deepEqual(unescapeString('\\xAB\\xcd\\n\\r\\t\\\\'), Buffer.from([0xab, 0xcd, 10, 13, 9, 0x5c]))
    const buf = Buffer.from('xx\\x41yy')
    assert.deepEqual(unescapeBytes(buf, 2, 6), Buffer.from('A'))
    assert.throws(() => unescapeBytes(buf, 2, 5), /no hex digits/)
  })

  it('unescape of arbitrary text either decodes or throws EscapeError, never anything else', () => {
    fc.assert(
      fc.property(bytesArb, (b) => {
        try {
          unescapeBytes(b)
        } catch (err) {
          assert.equal((err as Error).constructor.name, 'EscapeError')
        }
      }),
      {numRuns: 2000},
    )
  })
})

// ---- generated trees -------------------------------------------------------------------------

const nameArb = fc
  .uint8Array({minLength: 1, maxLength: 12})
  .map((a) => Buffer.from(a.map((c) => (c === 0 || c === 0x2f ? 0x61 : c))).toString('latin1'))
  .filter((s) => s !== '.' && s !== '..')
const smallBytes = (max: number) =>
  fc.oneof(
    fc.uint8Array({maxLength: max}).map((a) => Buffer.from(a)),
    fc.constantFrom(Buffer.from('-'), Buffer.from('a=b c\\d\n'), Buffer.alloc(0)),
  )
const cStringArb = (min: number, max: number) =>
  fc
    .uint8Array({minLength: min, maxLength: max})
    .map((a) => Buffer.from(a.map((c) => (c === 0 ? 0x2d : c))).toString('latin1'))
const xattrsArb = fc.array(fc.record({key: cStringArb(1, 20), value: smallBytes(30)}), {maxLength: 4})
const u32 = fc.integer({min: 0, max: 0xffffffff})

const entryArb = fc.record({
  kind: fc.constantFrom(
    'dir',
    'inline',
    'external',
    'empty',
    'symlink',
    'chr',
    'blk',
    'fifo',
    'sock',
    'hardlink',
  ),
  name: nameArb,
  parent: fc.nat(),
  pick: fc.nat(),
  perm: fc.integer({min: 0, max: 0o7777}),
  nlink: u32,
  uid: u32,
  gid: u32,
  rdev: u32,
  mtimeSec: fc.integer({min: 0, max: Number.MAX_SAFE_INTEGER}),
  mtimeNsec: fc.integer({min: 0, max: 999999999}),
  content: smallBytes(60).filter((b) => b.length > 0),
  size: fc.integer({min: 1, max: 2 ** 53}),
  payload: fc.option(cStringArb(0, 30), {nil: null}),
  target: cStringArb(1, 40),
  digest: fc.option(fc.uint8Array({minLength: 32, maxLength: 32}), {nil: null}),
  xattrs: xattrsArb,
})

type Entry = typeof entryArb extends fc.Arbitrary<infer T> ? T : never

function buildTree(entries: Entry[], rootXattrs: {key: string; value: Buffer}[]): FsNode {
  const root = new FsNode(S_IFDIR | 0o755)
  const setXattrs = (n: FsNode, xs: {key: string; value: Buffer}[]) => {
    for (const x of xs) n.setXattr(x.key, x.value)
  }
  setXattrs(root, rootXattrs)
  const dirs = [root]
  const files: FsNode[] = []
  for (const e of entries) {
    const parent = dirs[e.parent % dirs.length]!
    if (parent.children!.has(e.name)) continue
    let n: FsNode
    switch (e.kind) {
      case 'hardlink': {
        if (files.length === 0) continue
        n = new FsNode(S_IFREG | 0o644)
        n.linkTo = files[e.pick % files.length]!
        parent.addChild(e.name, n)
        continue
      }
      case 'dir':
        n = new FsNode(S_IFDIR | e.perm)
        dirs.push(n)
        break
      case 'inline':
        n = new FsNode(S_IFREG | e.perm)
        n.content = e.content
        n.size = e.content.length
        break
      case 'external':
        n = new FsNode(S_IFREG | e.perm)
        n.size = e.size
        n.payload = e.payload
        n.digest = e.digest && Buffer.from(e.digest)
        break
      case 'empty':
        n = new FsNode(S_IFREG | e.perm)
        break
      case 'symlink':
        n = new FsNode(S_IFLNK | 0o777)
        n.payload = e.target
        n.size = e.target.length
        break
      case 'chr':
      case 'blk':
        n = new FsNode((e.kind === 'chr' ? S_IFCHR : S_IFBLK) | e.perm)
        n.rdev = e.rdev
        break
      case 'fifo':
        n = new FsNode(S_IFIFO | e.perm)
        break
      case 'sock':
        n = new FsNode(S_IFSOCK | e.perm)
        break
    }
    n.nlink = e.nlink
    n.uid = e.uid
    n.gid = e.gid
    n.mtimeSec = e.mtimeSec
    n.mtimeNsec = e.mtimeNsec
    setXattrs(n, e.xattrs)
    parent.addChild(e.name, n)
    if (!n.isDir()) files.push(n)
  }
  return root
}

/** What a path holds, following hardlinks; xattrs sorted (the order an image keeps). */
function describeInode(n: FsNode): unknown {
  const t = n.target()
  return {
    mode: t.mode,
    nlink: t.nlink,
    uid: t.uid,
    gid: t.gid,
    rdev: t.rdev,
    size: t.size,
    mtime: [t.mtimeSec, t.mtimeNsec],
    payload: t.payload,
    content: t.content?.toString('hex') ?? null,
    digest: t.digest?.toString('hex') ?? null,
    xattrs: [...t.xattrs]
      .sort((a, b) => (a.key < b.key ? -1 : 1))
      .map((x) => [x.key, x.value.toString('hex')]),
  }
}

function assertSameTree(a: FsNode, b: FsNode): void {
  const pa = byPath(a)
  const pb = byPath(b)
  assert.deepEqual([...pb.keys()].sort(), [...pa.keys()].sort())
  // Same contents per path, and the same grouping of paths into inodes.
  const groupA = new Map<FsNode, string>()
  const groupB = new Map<FsNode, string>()
  for (const [p, na] of pa) {
    const nb = pb.get(p)!
    assert.deepEqual(describeInode(nb), describeInode(na), p)
    if (!groupA.has(na.target())) groupA.set(na.target(), p)
    if (!groupB.has(nb.target())) groupB.set(nb.target(), p)
  }
  for (const [p, na] of pa) {
    assert.equal(
      [...pa].filter(([, x]) => x.target() === na.target()).length,
      [...pb].filter(([, x]) => x.target() === pb.get(p)!.target()).length,
      p,
    )
  }
}

describe('write → parse on generated trees', () => {
  it('keeps every path, field, xattr and hardlink group, and is a fixed point', () => {
    fc.assert(
      fc.property(fc.array(entryArb, {maxLength: 25}), xattrsArb, (entries, rootXattrs) => {
        const tree = buildTree(entries, rootXattrs)
        const text = dumpToString(tree)
        const parsed = parseDumpSync(text, {strict: true})
        assertSameTree(tree, parsed)
        assert.equal(dumpToString(parsed), text)
      }),
      {numRuns: 300},
    )
  })
})

describe('large dumps', () => {
  it('parses a generated 100k-entry dump, from a buffer and from a stream', async () => {
    const lines = [ROOT]
    const dirs = 100
    for (let d = 0; d < dirs; d++) lines.push(`/d${d} 0 40755 2 0 0 0 0.0 - - -\n`)
    const files = 100_000 - dirs - 1
    for (let i = 0; i < files; i++) {
      const d = i % dirs
      if (i % 50 === 49) lines.push(`/d${d}/h${i} 0 @100644 1 0 0 0 0.0 /d${(i - 1) % dirs}/f${i - 1} - -\n`)
      else lines.push(`/d${d}/f${i} 3 100644 1 0 0 0 1.2 - abc - user.i=${i}\n`)
    }
    const text = lines.join('')
    const root = await parseDump(Buffer.from(text))
    let count = 0
    for (const _ of walk(root)) count++
    assert.equal(count, 100_000)
    async function* chunks() {
      const b = Buffer.from(text)
      for (let i = 0; i < b.length; i += 65536) yield b.subarray(i, i + 65536)
    }
    const streamed = await parseDump(chunks())
    assert.equal(dumpToString(streamed), dumpToString(root))
  })

  it('parses a deep path chain', async () => {
    const lines = [ROOT]
    let path = ''
    for (let i = 0; i < 2000; i++) {
      path += '/d'
      lines.push(`${path} 0 40755 2 0 0 0 0.0 - - -\n`)
    }
    const root = await parseDump(lines.join(''))
    assert.equal(dumpToString(root), lines.join(''))
  })
})

it('upstream test data directory is present', {skip: noUpstream || !existsSync(upstreamDir)}, () => {
  assert.ok(cases.some((c) => c.name === 'special.dump'))
})
