// The image writer against upstream composefs: byte-identical images for upstream's own test
// dumps, images that fsck.erofs accepts, and the same bytes on every run.
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {parseDump} from '../src/format/dump/parse.js'
import {streamImage, writeImage} from '../src/format/erofs/writer.js'
import {InvalidInputError} from '../src/errors.js'
import {FsNode, S_IFDIR, S_IFREG} from '../src/tree/node.js'
import {fsverityDigest} from '../src/verity/merkle.js'
import {needTool, run} from './helpers/tools.js'
import {upstreamCases} from './helpers/upstream.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-writer-'))
after(() => rmSync(work, {recursive: true, force: true}))

const cases = upstreamCases()
const buildable = cases.filter((c) => c.sha256)

describe(
  'upstream composefs test dumps',
  {skip: cases.length === 0 && 'no ../shared/testdata/composefs'},
  () => {
    for (const c of buildable) {
      it(`${c.name} builds byte-identical to upstream`, async () => {
        const root = await parseDump(c.dump)
        const opts = c.version === undefined ? {} : {minVersion: c.version, maxVersion: c.version}
        const {image, digest} = writeImage(root, opts)
        assert.equal(createHash('sha256').update(image).digest('hex'), c.sha256)
        assert.deepEqual(digest, fsverityDigest(image))
      })
    }

    it('fsck.erofs accepts every image', {skip: needTool('fsck.erofs', 'erofs-utils')}, async () => {
      for (const c of buildable) {
        const path = join(work, c.name + '.img')
        writeFileSync(path, writeImage(await parseDump(c.dump)).image)
        run('fsck.erofs', [path])
      }
    })
  },
)

describe('writer', () => {
  const tree = (): FsNode => {
    const root = new FsNode(S_IFDIR | 0o755)
    const f = new FsNode(S_IFREG | 0o644)
    f.size = 100000
    f.digest = Buffer.alloc(32, 7)
    f.payload = '07/' + '07'.repeat(31)
    root.addChild('big', f)
    const small = new FsNode(S_IFREG | 0o600)
    small.size = 3
    small.content = Buffer.from('hi\n')
    root.addChild('small', small)
    return root
  }

  it('writes the same bytes every time and leaves the input tree unchanged', () => {
    const t = tree()
    const a = writeImage(t)
    const b = writeImage(t)
    assert.deepEqual(a.image, b.image)
    assert.equal(t.children!.size, 2)
    assert.equal(t.getXattr('trusted.overlay.opaque'), undefined)
  })

  it('streams the same bytes as it writes whole, across many windows', () => {
    // Large enough for several windows, with what each writes in its own way: many inodes,
    // directories of many blocks, inline content of several blocks, long symlinks, xattrs.
    const root = new FsNode(S_IFDIR | 0o755)
    for (let d = 0; d < 4; d++) {
      const dir = new FsNode(S_IFDIR | 0o755)
      root.addChild(`dir${d}`, dir)
      for (let k = 0; k < 3000; k++) {
        const f = new FsNode(S_IFREG | 0o644)
        f.mtimeSec = k
        if (k % 3 === 0) {
          f.size = 4500
          f.content = Buffer.alloc(4500, k)
        } else if (k % 3 === 1) {
          f.size = 1000 + k
          f.digest = Buffer.alloc(32, k)
          f.payload = `${'x'.repeat(40)}/${k}`
        } else {
          f.mode = 0o120777
          f.payload = 'target-'.repeat(500) + k
          f.size = f.payload.length
        }
        if (k % 7 === 0) f.setXattr('user.note', Buffer.from(`note ${k % 5}`))
        dir.addChild(`${'entry-with-a-long-name-'.repeat(3)}${k}`, f)
      }
    }
    const whole = writeImage(root)
    const pieces: Buffer[] = []
    const streamed = streamImage(root, {}, (bytes) => pieces.push(Buffer.from(bytes)))
    assert.ok(pieces.length > 3)
    assert.equal(streamed.size, whole.image.length)
    assert.equal(streamed.inodes, whole.inodes)
    assert.ok(Buffer.concat(pieces).equals(whole.image))
  })

  it('refuses format versions it does not know', () => {
    assert.throws(() => writeImage(tree(), {minVersion: 2, maxVersion: 2}), InvalidInputError)
  })

  it('refuses an external file too large for the format', () => {
    const t = tree()
    t.children!.get('big')!.size = 2 ** 53 + 2
    assert.throws(() => writeImage(t), InvalidInputError)
  })

  it('refuses a root that is not a directory', () => {
    assert.throws(() => writeImage(new FsNode(S_IFREG | 0o644)), InvalidInputError)
  })
})
