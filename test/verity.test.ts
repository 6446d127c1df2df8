// The fs-verity digest engine: against fsverity-utils (`fsverity digest`) on awkward sizes, against
// an independent Merkle tree written here with @noble/hashes, streaming in any chunk sizes, the
// worker pool against the single-thread hasher, hostile inputs, and the `digest` command.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {sha256} from '@noble/hashes/sha2.js'
import fc from 'fast-check'

import {
  DIGEST_SIZE,
  digestHex,
  FsVerityHasher,
  fsverityDigest,
  LEVEL1_SPAN,
  MerkleLevels,
} from '../src/verity/merkle.js'
import {readArguments} from '../src/verity/early.js'
import {DigestPool, digestFile, LARGE_FILE, planRanges} from '../src/verity/pool.js'
import {holdsAtLeast} from '../src/verity/sizes.js'
import {needTool, run} from './helpers/tools.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-verity-'))
after(() => rmSync(work, {recursive: true, force: true}))

const BIN = fileURLToPath(new URL('../../bin/run.js', import.meta.url))
const noFsverity = needTool('fsverity', 'fsverity')

/** A small deterministic generator (xorshift32), so a failing size can be reproduced. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1
  return () => {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    return x / 0x100000000
  }
}

/** Writes `size` random bytes to a file in the work directory; returns its path and bytes. */
function makeFile(name: string, size: number): {path: string; data: Buffer} {
  const data = randomBytes(size)
  const path = join(work, name)
  writeFileSync(path, data)
  return {path, data}
}

/** `fsverity digest --compact` of each path (one run for all). */
function fsverityTool(paths: string[]): string[] {
  return run('fsverity', ['digest', '--compact', ...paths])
    .trim()
    .split('\n')
}

/**
 * The oracle: the fs-verity digest computed the plain way, a whole level at a time, with a
 * SHA-256 that is not node:crypto. Only the definition is shared with the code under test.
 */
function oracleDigest(data: Uint8Array): Uint8Array {
  const B = 4096
  const hashBlocks = (bytes: Uint8Array): Uint8Array => {
    const n = Math.ceil(bytes.length / B)
    const out = new Uint8Array(n * 32)
    for (let i = 0; i < n; i++) {
      const block = new Uint8Array(B) // zero-padded
      block.set(bytes.subarray(i * B, Math.min(bytes.length, (i + 1) * B)))
      out.set(sha256(block), i * 32)
    }
    return out
  }
  let root: Uint8Array = new Uint8Array(32)
  if (data.length > 0) {
    let level = hashBlocks(data)
    while (level.length > 32) level = hashBlocks(level)
    root = level
  }
  const desc = new Uint8Array(256)
  const view = new DataView(desc.buffer)
  desc[0] = 1 // version
  desc[1] = 1 // SHA-256
  desc[2] = 12 // log2 of 4096
  desc[3] = 0 // no salt
  view.setBigUint64(8, BigInt(data.length), true)
  desc.set(root, 16)
  return sha256(desc)
}

const AWKWARD_SIZES = [
  0,
  1,
  4095,
  4096,
  4097,
  131071,
  131072,
  131073,
  128 * 4096 - 1,
  128 * 4096,
  128 * 4096 + 1,
  2 * 128 * 4096 + 4096,
]

describe('fsverity-utils agreement', {skip: noFsverity}, () => {
  const rnd = prng(0x5eed)
  const sizes = [
    ...AWKWARD_SIZES,
    LARGE_FILE - 1,
    LARGE_FILE,
    LARGE_FILE + 1,
    33 * 1000 * 1000 + 7, // ~33 MB: two levels above the data, split into ranges
    64 * 1024 * 1024 + 4097, // more than 128 * 128 blocks: three levels
    ...Array.from({length: 12}, () => Math.floor(rnd() * 3_000_000)),
  ]
  const files: {path: string; data: Buffer; expected: string}[] = []

  before(() => {
    const made = sizes.map((size, i) => makeFile(`fsv-${i}-${size}`, size))
    const expected = fsverityTool(made.map((f) => f.path))
    made.forEach((f, i) => files.push({...f, expected: expected[i]!}))
  })

  it('one-shot fsverityDigest equals `fsverity digest` on every size', () => {
    for (const f of files)
      assert.equal(fsverityDigest(f.data).toString('hex'), f.expected, `size ${f.data.length}`)
  })

  it('DigestPool (workers, ranges) equals `fsverity digest` on every size', async () => {
    const pool = new DigestPool({threads: 2})
    try {
      const got = await pool.digestFiles(files.map((f) => f.path))
      got.forEach((d, i) =>
        assert.equal(d.toString('hex'), files[i]!.expected, `size ${files[i]!.data.length}`),
      )
    } finally {
      await pool.close()
    }
  })

  it('digestFile without a pool equals `fsverity digest`', async () => {
    for (const f of files.filter((f) => f.data.length <= LARGE_FILE + 1 || f.data.length > 60e6)) {
      assert.equal((await digestFile(f.path)).toString('hex'), f.expected, `size ${f.data.length}`)
    }
  })
})

describe('the independent oracle (@noble/hashes)', () => {
  it('agrees on awkward sizes and a three-level tree', () => {
    for (const size of [...AWKWARD_SIZES, 128 * 128 * 4096 + 1]) {
      const data = randomBytes(size)
      assert.equal(fsverityDigest(data).toString('hex'), digestHex(oracleDigest(data)), `size ${size}`)
    }
  })

  it('agrees on random sizes (property)', () => {
    fc.assert(
      fc.property(fc.integer({min: 0, max: 600_000}), (size) => {
        const data = randomBytes(size)
        assert.equal(fsverityDigest(data).toString('hex'), digestHex(oracleDigest(data)))
      }),
      {numRuns: 25},
    )
  })

  it('knows the digest of the empty file', () => {
    // Root hash all zeros, size 0: a fixed value fsverity-utils prints too.
    assert.equal(
      fsverityDigest(new Uint8Array(0)).toString('hex'),
      '3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95',
    )
  })
})

describe('FsVerityHasher (streaming)', () => {
  it('gives the one-shot digest whatever the chunk sizes (property)', () => {
    const data = randomBytes(3 * LEVEL1_SPAN + 12345)
    fc.assert(
      fc.property(
        fc.integer({min: 0, max: data.length}),
        fc.array(fc.integer({min: 0, max: 70_000}), {minLength: 0, maxLength: 40}),
        (size, cuts) => {
          const whole = data.subarray(0, size)
          const h = new FsVerityHasher()
          let pos = 0
          for (const len of cuts) {
            if (pos >= size) break
            h.update(whole.subarray(pos, Math.min(size, pos + len)))
            pos = Math.min(size, pos + len)
          }
          h.update(whole.subarray(pos))
          assert.deepEqual(h.digest(), fsverityDigest(whole))
        },
      ),
      {numRuns: 60},
    )
  })

  it('takes single bytes and empty chunks', () => {
    const data = randomBytes(3 * 4096 + 17)
    const h = new FsVerityHasher()
    for (let i = 0; i < data.length; i++) {
      h.update(data.subarray(i, i + 1))
      h.update(new Uint8Array(0))
    }
    assert.deepEqual(h.digest(), fsverityDigest(data))
  })

  it('does not read the caller’s chunk after update() returns', () => {
    const chunk = randomBytes(6000)
    const copy = Buffer.from(chunk)
    const h = new FsVerityHasher()
    h.update(chunk)
    chunk.fill(0)
    assert.deepEqual(h.digest(), fsverityDigest(copy))
  })

  it('refuses use after digest()', () => {
    const h = new FsVerityHasher()
    assert.equal(h.digest().length, DIGEST_SIZE)
    assert.throws(() => h.update(new Uint8Array(1)))
    assert.throws(() => h.digest())
  })
})

describe('MerkleLevels and range planning', () => {
  it('one hash is its own root; none is all zeros', () => {
    const l = new MerkleLevels()
    assert.deepEqual(l.finish(), Buffer.alloc(32))
    const one = new MerkleLevels()
    const h = randomBytes(32)
    one.add(h)
    assert.deepEqual(one.finish(), h)
  })

  it('cuts files into contiguous, 512 KiB-aligned ranges that shrink towards the end', () => {
    for (const size of [LARGE_FILE, LARGE_FILE + 1, 33e6, 2 ** 30, 2 ** 30 + 5, 3 * 2 ** 32 + 1]) {
      for (const threads of [1, 2, 3, 16]) {
        const r = planRanges(size, threads)
        assert.equal(r[0]![0], 0)
        assert.equal(r.at(-1)![1], size)
        r.forEach(([start, end], i) => {
          assert.equal(start % LEVEL1_SPAN, 0)
          assert.ok(end > start)
          if (i > 0) assert.equal(start, r[i - 1]![1])
        })
        const lengths = r.map(([s, e]) => e - s)
        assert.ok(lengths.at(-2) === undefined || lengths.at(-2)! <= lengths[0]!)
      }
    }
  })
})

describe('holdsAtLeast (whether workers are worth starting)', () => {
  const dir = join(work, 'sizes')
  before(() => {
    mkdirSync(dir)
    for (let i = 0; i < 600; i++) writeFileSync(join(dir, `f${i}`), Buffer.alloc(1000))
  })
  const files = (n: number): string[] => Array.from({length: n}, (_, i) => join(dir, `f${i}`))

  it('sums a short list exactly, counting only regular files', () => {
    const list = [...files(3), dir, join(dir, 'missing')]
    assert.equal(holdsAtLeast(list, 3000), true)
    assert.equal(holdsAtLeast(list, 3001), false)
    assert.equal(holdsAtLeast([], 1), false)
  })

  it('judges a long list by its first 512 files', () => {
    // 600 files of 1000 bytes: 512 stat-ed stand for 600 000 bytes.
    assert.equal(holdsAtLeast(files(600), 600_000), true)
    assert.equal(holdsAtLeast(files(600), 600_001), false)
    // Met within the sample: no extrapolation needed.
    assert.equal(holdsAtLeast(files(600), 100_000), true)
  })
})

describe('DigestPool', () => {
  const rnd = prng(42)
  const small = Array.from({length: 300}, (_, i) =>
    makeFile(`small-${i}`, Math.floor(rnd() * rnd() * 40_000)),
  )
  const big = [LARGE_FILE - 1, LARGE_FILE, 9 * 1024 * 1024 + 3, 21 * 1024 * 1024 + 4096].map((s) =>
    makeFile(`big-${s}`, s),
  )
  // Big files among the small ones, so ranges and batches are in flight together.
  const mix = [
    ...small.slice(0, 100),
    big[0]!,
    big[1]!,
    ...small.slice(100, 200),
    big[2]!,
    big[3]!,
    ...small.slice(200),
  ]
  const expected = mix.map((f) => fsverityDigest(f.data))
  const totalBytes = mix.reduce((n, f) => n + f.data.length, 0)

  for (const opts of [
    {threads: 1},
    {threads: 2},
    {threads: 3, mainThread: true},
    {threads: 0, mainThread: true},
  ]) {
    it(`equals the single-thread hasher on a mix of small and big files (${JSON.stringify(opts)})`, async () => {
      const pool = new DigestPool(opts)
      try {
        let last: [number, number] = [0, 0]
        let calls = 0
        const got = await pool.digestFiles(
          mix.map((f) => f.path),
          (done, bytes) => {
            calls++
            assert.ok(done > last[0] && bytes >= last[1])
            last = [done, bytes]
          },
        )
        assert.deepEqual(got, expected)
        assert.equal(calls, mix.length)
        assert.deepEqual(last, [mix.length, totalBytes])
        // A second round on the same pool.
        assert.deepEqual(await pool.digestFile(big[3]!.path), fsverityDigest(big[3]!.data))
      } finally {
        await pool.close()
      }
    })
  }

  it('reports each unreadable file and still digests the others', async () => {
    const dir = join(work, 'a-directory')
    mkdirSync(dir)
    const fifo = join(work, 'a-fifo')
    const hasFifo = spawnSync('mkfifo', [fifo]).status === 0
    const link = join(work, 'a-link')
    symlinkSync(small[0]!.path, link)
    const pool = new DigestPool({threads: 2})
    try {
      const paths = [small[1]!.path, join(work, 'missing'), dir, link, ...(hasFifo ? [fifo] : [])]
      const out = await pool.digestFilesSettled(paths)
      assert.ok('digest' in out[0]! && out[0].digest.equals(fsverityDigest(small[1]!.data)))
      assert.equal('error' in out[1]! && out[1].error.code, 'ENOENT')
      assert.equal('error' in out[2]! && out[2].error.code, 'ENOTREG')
      assert.ok(
        'digest' in out[3]! && out[3].digest.equals(fsverityDigest(small[0]!.data)),
        'symlinks are followed',
      )
      if (hasFifo)
        assert.equal('error' in out[4]! && out[4].error.code, 'ENOTREG', 'a FIFO is refused, not read')
      await assert.rejects(pool.digestFiles([small[2]!.path, join(work, 'missing')]), {code: 'ENOENT'})
      await assert.rejects(pool.digestFile(join(work, 'missing')), /ENOENT/)
      assert.deepEqual(await pool.digestFile(small[3]!.path), fsverityDigest(small[3]!.data))
    } finally {
      await pool.close()
    }
    await assert.rejects(pool.digestFile(small[3]!.path), /closed/)
  })

  it('takes raw-byte (non-UTF-8) paths', async () => {
    const name = Buffer.concat([Buffer.from(work + '/'), Buffer.from([0x66, 0xff, 0xfe, 0x2e])])
    const data = randomBytes(9000)
    writeFileSync(name, data)
    const pool = new DigestPool({threads: 1})
    try {
      assert.deepEqual(await pool.digestFiles([name]), [fsverityDigest(data)])
    } finally {
      await pool.close()
    }
    assert.deepEqual(await digestFile(name), fsverityDigest(data))
  })

  it('an idle pool does not keep the process alive, and empty input is fine', async () => {
    const pool = new DigestPool({threads: 2})
    assert.deepEqual(await pool.digestFiles([]), [])
    await pool.digestFile(small[5]!.path)
    // No close(): node:test would hang here if the idle workers held the event loop.
  })

  it('refuses nonsense thread counts', () => {
    assert.throws(() => new DigestPool({threads: -1}), RangeError)
    assert.throws(() => new DigestPool({threads: 1.5}), RangeError)
    assert.throws(() => new DigestPool({threads: 0}), RangeError)
  })
})

describe('the early path of bin/run.js', () => {
  it('answers only plain `digest [--compact] FILE...` itself', () => {
    assert.deepEqual(readArguments(['a', 'b']), {files: ['a', 'b'], compact: false, plain: true})
    assert.deepEqual(readArguments(['--compact', 'a']), {files: ['a'], compact: true, plain: true})
    assert.deepEqual(readArguments(['--', '--compact', '-x']), {
      files: ['--compact', '-x'],
      compact: false,
      plain: true,
    })
    assert.equal(readArguments(['--json', 'a']).plain, false)
    assert.deepEqual(readArguments(['--json', 'a']).files, ['a'])
    assert.equal(readArguments(['--bogus', 'a']).plain, false)
    assert.deepEqual(readArguments(['a', '--help']), {files: [], compact: false, plain: false})
    assert.equal(readArguments([]).plain, false)
  })
})

describe('cfsboot digest', () => {
  const a = makeFile('cli-a', 5000)
  const b = makeFile('cli-b', 0)
  const c = makeFile('cli c with spaces', LARGE_FILE * 2 + 1) // large enough for the workers
  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'digest', ...args], {encoding: 'utf8'})
  const hex = (d: Buffer): string => d.toString('hex')

  it('prints one "sha256:<hex> <path>" line per file', () => {
    const r = cli(a.path, b.path, c.path)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, [a, b, c].map((f) => `sha256:${hex(fsverityDigest(f.data))} ${f.path}\n`).join(''))
  })

  it('prints exactly what `fsverity digest` prints', {skip: noFsverity}, () => {
    const paths = [a.path, b.path, c.path]
    assert.equal(cli(...paths).stdout, run('fsverity', ['digest', ...paths]))
    assert.equal(cli('--compact', ...paths).stdout, run('fsverity', ['digest', '--compact', ...paths]))
  })

  it('the oclif command prints what the fast path of bin/run.js prints', () => {
    // bin/run.js answers plain `digest` calls before loading oclif; run the oclif command itself.
    const root = fileURLToPath(new URL('../..', import.meta.url))
    const script = `import {execute} from '@oclif/core'
await execute({dir: ${JSON.stringify(BIN)}, args: JSON.parse(process.argv[1])})`
    for (const flags of [[], ['--compact']]) {
      const args = ['digest', ...flags, a.path, b.path, c.path]
      const viaOclif = spawnSync(
        process.execPath,
        ['--input-type=module', '-e', script, JSON.stringify(args)],
        {
          cwd: root,
          encoding: 'utf8',
        },
      )
      assert.equal(viaOclif.status, 0, viaOclif.stderr)
      assert.equal(viaOclif.stdout, cli(...flags, a.path, b.path, c.path).stdout)
    }
  })

  it('--json gives path, digest and size', () => {
    const r = cli(a.path, c.path, '--json')
    assert.equal(r.status, 0, r.stderr)
    assert.deepEqual(JSON.parse(r.stdout), {
      files: [a, c].map((f) => ({path: f.path, digest: hex(fsverityDigest(f.data)), size: f.data.length})),
    })
  })

  it('a missing file: one error line, exit code 3, the files before it printed', () => {
    const missing = join(work, 'no-such-file')
    const r = cli(a.path, missing, b.path)
    assert.equal(r.status, 3)
    assert.equal(r.stdout, `sha256:${hex(fsverityDigest(a.data))} ${a.path}\n`)
    const lines = r.stderr.trim().split('\n')
    assert.equal(lines.length, 1, r.stderr)
    assert.match(lines[0]!, /no-such-file: no such file or directory/)
  })

  it('a flag error does not wait for the hashing started before oclif', () => {
    const r = cli('--no-such-flag', c.path)
    assert.equal(r.status, 2)
    assert.match(r.stderr, /no-such-flag/)
  })

  it('a directory is refused with one line', () => {
    const r = cli(work)
    assert.equal(r.status, 3)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /not a regular file/)
  })

  // fs-verity covers a file's size, and `fsverity digest` reads exactly that many bytes.
  it('a /proc file, whose size is 0, digests as empty, as `fsverity digest` says', () => {
    const r = cli('/proc/version')
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, `sha256:${hex(fsverityDigest(Buffer.alloc(0)))} /proc/version\n`)
    if (!noFsverity) assert.equal(r.stdout, run('fsverity', ['digest', '/proc/version']))
  })

  it('a file shorter than its size (sysfs: 4096) is refused with one line, as by `fsverity digest`', () => {
    const r = cli('/sys/kernel/profiling')
    assert.equal(r.status, 3)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /shrank while being read \(\d+ of 4096 bytes\)/)
  })
})
