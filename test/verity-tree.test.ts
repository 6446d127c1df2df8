// The whole fs-verity Merkle tree and descriptor (src/verity/tree.ts) and where ext4 keeps them
// (src/verity/ext4.ts): byte for byte against fsverity-utils (`fsverity digest
// --out-merkle-tree --out-descriptor`, the bytes the kernel stores) and against a tree built
// here level by level with @noble/hashes (a SHA-256 that is not node:crypto).
import assert from 'node:assert/strict'
import {randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {sha256} from '@noble/hashes/sha2.js'

import {setVerityFlags, writeVerityMetadata} from '../src/install/preseal.js'
import {statInodes} from '../src/system/debugfs.js'
import {EXT4_VERITY_FL, EXT4_VERITY_METADATA_ALIGN, ext4VerityTail} from '../src/verity/ext4.js'
import {VerityTreeBuilder, verityTreeOf} from '../src/verity/tree.js'
import {needTool, run} from './helpers/tools.js'

const B = 4096
/** 0 to 3 blocks and their edges, one full level-0 block (128 data blocks) and one over, a few MiB. */
const SIZES = [
  0,
  1,
  100,
  B - 1,
  B,
  B + 1,
  2 * B,
  3 * B - 1,
  3 * B,
  B * 128,
  B * 128 + 1,
  3 * 1024 * 1024 + 17,
  5 * 1024 * 1024,
]

const work = mkdtempSync(join(tmpdir(), 'cfsboot-verity-tree-'))
after(() => rmSync(work, {recursive: true, force: true}))

/** The tree the plain way: hash a whole level, pad it to blocks, repeat; levels root-most first. */
function oracle(data: Uint8Array): {tree: Buffer; descriptor: Buffer; digest: Buffer} {
  const levels: Uint8Array[] = []
  let root = new Uint8Array(32)
  if (data.length > 0) {
    let bytes = data
    for (;;) {
      const n = Math.ceil(bytes.length / B)
      const hashes = new Uint8Array(n * 32)
      for (let i = 0; i < n; i++) {
        const block = new Uint8Array(B)
        block.set(bytes.subarray(i * B, Math.min(bytes.length, (i + 1) * B)))
        hashes.set(sha256(block), i * 32)
      }
      if (n === 1) {
        root = hashes
        break
      }
      const level = new Uint8Array(Math.ceil(hashes.length / B) * B)
      level.set(hashes)
      levels.unshift(level)
      bytes = level
    }
  }
  const d = Buffer.alloc(256)
  d[0] = 1 // version
  d[1] = 1 // SHA-256
  d[2] = 12 // log2(4096)
  d.writeBigUInt64LE(BigInt(data.length), 8)
  d.set(root, 16)
  return {tree: Buffer.concat(levels), descriptor: d, digest: Buffer.from(sha256(d))}
}

describe('the Merkle tree and descriptor', () => {
  it('equal the independent @noble/hashes tree for every size, also when streamed in odd chunks', () => {
    for (const size of SIZES) {
      const data = randomBytes(size)
      const want = oracle(data)
      const got = verityTreeOf(data)
      assert.ok(got.tree.equals(want.tree), `tree, ${size} bytes`)
      assert.ok(got.descriptor.equals(want.descriptor), `descriptor, ${size} bytes`)
      assert.ok(got.digest.equals(want.digest), `digest, ${size} bytes`)
      const s = new VerityTreeBuilder()
      for (let off = 0; off < size; off += 4093) s.update(data.subarray(off, off + 4093))
      assert.ok(s.finish().tree.equals(want.tree), `streamed tree, ${size} bytes`)
    }
  })

  it(
    'equal fsverity-utils --out-merkle-tree and --out-descriptor, and its digest',
    {skip: needTool('fsverity', 'fsverity')},
    () => {
      for (const size of SIZES) {
        const data = randomBytes(size)
        const file = join(work, 'f')
        writeFileSync(file, data)
        const out = run('fsverity', [
          'digest',
          file,
          `--out-merkle-tree=${join(work, 'tree')}`,
          `--out-descriptor=${join(work, 'desc')}`,
        ])
        const got = verityTreeOf(data)
        assert.ok(got.tree.equals(readFileSync(join(work, 'tree'))), `tree, ${size} bytes`)
        assert.ok(got.descriptor.equals(readFileSync(join(work, 'desc'))), `descriptor, ${size} bytes`)
        assert.match(out, new RegExp(`^sha256:${got.digest.toString('hex')} `), `digest, ${size} bytes`)
      }
    },
  )
})

describe('the ext4 tail', () => {
  it('puts the tree at the next 64 KiB boundary and the descriptor, with its size last, in the block after', () => {
    for (const size of SIZES) {
      const t = verityTreeOf(randomBytes(size))
      const tail = ext4VerityTail(t)
      assert.equal(tail.offset % EXT4_VERITY_METADATA_ALIGN, 0)
      assert.ok(
        tail.offset >= size && tail.offset - size < EXT4_VERITY_METADATA_ALIGN,
        `offset, ${size} bytes`,
      )
      assert.equal(tail.bytes.length, t.tree.length + B, 'the tree and one descriptor block')
      assert.ok(tail.bytes.subarray(0, t.tree.length).equals(t.tree))
      const desc = tail.bytes.subarray(t.tree.length)
      assert.ok(desc.subarray(0, 256).equals(t.descriptor))
      assert.equal(desc.readUInt32LE(B - 4), 256, 'the descriptor size in the last 4 bytes of the last block')
      assert.ok(desc.subarray(256, B - 4).every((b) => b === 0))
    }
  })
})

describe(
  'pre-sealing an ext4 image file (debugfs, no mount, no root)',
  {skip: needTool('debugfs', 'e2fsprogs') || needTool('mkfs.ext4', 'e2fsprogs')},
  () => {
    it('sets the data size and EXT4_VERITY_FL on files written with their tails; e2fsck is clean', async () => {
      const dir = join(work, 'fstree')
      mkdirSync(join(dir, 'o'), {recursive: true})
      const files: {path: string; digest: string}[] = []
      for (const size of [1, B, B + 1, B * 128 + 1, 300_000]) {
        const data = randomBytes(size)
        const hex = verityTreeOf(data).digest.toString('hex')
        const path = join(dir, 'o', hex)
        writeFileSync(path, data)
        files.push({path, digest: hex})
      }
      const plan = writeVerityMetadata(dir, files)
      const img = join(work, 'fs.img')
      rmSync(img, {force: true})
      run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-O', 'verity', '-d', dir, img, '16M'])
      const result = await setVerityFlags(img, plan)
      assert.equal(result.state, 'presealed')
      run('e2fsck', ['-fn', img])
      const st = await statInodes(
        img,
        plan.files.map((f) => f.path),
      )
      for (const [i, f] of plan.files.entries()) {
        assert.ok(st[i]!.flags & EXT4_VERITY_FL, f.path)
        assert.equal(st[i]!.size, f.dataSize)
      }
    })

    it('refuses a file whose name is not its digest, and debugfs errors become EDEBUGFS', async () => {
      const dir = join(work, 'bad')
      mkdirSync(dir, {recursive: true})
      writeFileSync(join(dir, 'f'), 'some data')
      assert.throws(() => writeVerityMetadata(dir, [{path: join(dir, 'f'), digest: '00'.repeat(32)}]), {
        code: 'EDAMAGE',
      })
      const img = join(work, 'empty.img')
      rmSync(img, {force: true})
      run('mkfs.ext4', ['-q', '-F', '-b', '4096', '-O', 'verity', img, '8M'])
      await assert.rejects(statInodes(img, ['/no/such/file']), {code: 'EDEBUGFS'})
    })
  },
)
