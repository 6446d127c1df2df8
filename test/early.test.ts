// `build` (of a dump or a tree) and `image dump` answered before oclif loads (cli/early.ts)
// must print, write and refuse exactly what the oclif commands do: each case runs through
// bin/run.js or cli/early.js itself (the early path) and through oclif's execute() (the command
// itself), and the two are compared.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {
  existsSync,
  linkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {readBuildArguments, readDumpArguments} from '../cli/early.js'
import {dumpToString} from '../src/format/dump/write.js'
import {writeImage} from '../src/format/erofs/writer.js'
import {richTree} from './helpers/sample-trees.js'
import {REPO, RUN_JS} from './helpers/sysroot.js'
import {needRoot, run} from './helpers/tools.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-early-'))
after(() => rmSync(work, {recursive: true, force: true}))

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

const env = (): NodeJS.ProcessEnv => {
  const e = {...process.env}
  delete e.CFSBOOT_CONTENT_TYPE
  return e
}

function early(args: string[]): Run {
  const r = spawnSync(process.execPath, [RUN_JS, ...args], {encoding: 'latin1', env: env()})
  return {status: r.status, stdout: r.stdout, stderr: r.stderr}
}

function oclif(args: string[]): Run {
  const script = `import {execute} from '@oclif/core'
await execute({dir: ${JSON.stringify(RUN_JS)}, args: JSON.parse(process.argv[1])})`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(args)], {
    cwd: REPO,
    encoding: 'latin1',
    env: env(),
  })
  return {status: r.status, stdout: r.stdout, stderr: r.stderr}
}

/** The error line (other stderr lines may be Node warnings). */
const errorLines = (stderr: string): string[] => stderr.split('\n').filter((l) => l.includes('Error'))

describe('the early path of bin/run.js for build and image dump', () => {
  const image = writeImage(richTree()).image
  const imagePath = join(work, 'rich.cfs')
  writeFileSync(imagePath, image)
  const dumpPath = join(work, 'rich.dump')
  writeFileSync(dumpPath, dumpToString(richTree()), 'latin1')

  it('takes only the plain forms', () => {
    assert.deepEqual(readBuildArguments(['--from-dump', 'd', '-o', 'i']), {
      source: 'd',
      output: 'i',
      fromDump: true,
      strict: false,
    })
    assert.deepEqual(readBuildArguments(['d', '--output=i', '--strict', '--from-dump']), {
      source: 'd',
      output: 'i',
      fromDump: true,
      strict: true,
    })
    assert.deepEqual(readBuildArguments(['--from-dump', 'd', '--output', 'i'])?.output, 'i')
    assert.deepEqual(readBuildArguments(['-o', 'i', 'd']), {
      source: 'd',
      output: 'i',
      fromDump: false,
      strict: false,
    })
    for (const args of [
      ['d', '-o', 'i', '--strict'], // --strict is for dumps
      ['d', '-o', 'i', '--objects', 'o'],
      ['d', '-o', 'i', '--threads', '1'],
      ['d', '-o', 'i', '--json'],
      ['d', 'e', '-o', 'i'],
      ['--from-dump', '-', '-o', 'i'], // stdin
      ['--from-dump', 'd', '-o', 'i', '--json'],
      ['--from-dump', 'd', '-o', 'i', '--min-version', '1'],
      ['--from-dump', 'd', '-o', 'i', '-o', 'j'],
      ['--from-dump', 'd', 'e', '-o', 'i'],
      ['--from-dump', 'd', '-o'],
      ['--from-dump', 'd', '-o', '--strict'],
      ['--from-dump', 'd', '--output='],
      ['--from-dump', '--from-dump', 'd', '-o', 'i'],
      ['--from-dump', 'd', '-o', 'i', '--help'],
      ['--from-dump', 'd', '-o', 'i', '--'],
    ]) {
      assert.equal(readBuildArguments(args), undefined, args.join(' '))
    }
    assert.equal(readDumpArguments(['i']), 'i')
    for (const args of [[], ['i', 'j'], ['--json'], ['i', '--help'], ['-']]) {
      assert.equal(readDumpArguments(args), undefined, args.join(' '))
    }
  })

  it('build --from-dump writes the same image and prints the same digest', () => {
    for (const flags of [[], ['--strict']]) {
      const a = join(work, 'early.cfs')
      const b = join(work, 'oclif.cfs')
      const e = early(['build', '--from-dump', dumpPath, '-o', a, ...flags])
      const o = oclif(['build', '--from-dump', dumpPath, '-o', b, ...flags])
      assert.equal(e.status, 0, e.stderr)
      assert.equal(o.status, 0, o.stderr)
      assert.equal(e.stdout, o.stdout)
      assert.match(e.stdout, /^[0-9a-f]{64}\n$/)
      assert.ok(readFileSync(a).equals(readFileSync(b)))
      assert.ok(readFileSync(a).equals(image))
    }
  })

  it('build --from-dump refuses a bad dump the same way, leaving no image', () => {
    const bad = join(work, 'bad.dump')
    writeFileSync(bad, '/ 0 40755 2 0 0 0 0.0 - - -\n/x 0 100644 1 0 0 0 0.0 - - - nokey\n')
    const a = join(work, 'bad-early.cfs')
    const e = early(['build', '--from-dump', bad, '-o', a])
    const o = oclif(['build', '--from-dump', bad, '-o', a])
    assert.equal(e.status, 3)
    assert.equal(e.status, o.status)
    assert.equal(e.stdout, o.stdout)
    assert.deepEqual(errorLines(e.stderr), errorLines(o.stderr))
    assert.match(errorLines(e.stderr)[0]!, /^Error: dump line 2: missing = in xattr/)
    assert.equal(existsSync(a), false)
    const missing = early(['build', '--from-dump', join(work, 'nothing.dump'), '-o', a])
    const missingOclif = oclif(['build', '--from-dump', join(work, 'nothing.dump'), '-o', a])
    assert.equal(missing.status, missingOclif.status)
    assert.deepEqual(errorLines(missing.stderr), errorLines(missingOclif.stderr))
  })

  /** cli/early.js's answer itself (bin/run.js may not send every form there): 99 if it declined. */
  function earlyModule(args: string[]): Run {
    const script = `import {buildBeforeOclif} from ${JSON.stringify(join(REPO, 'dist', 'cli', 'early.js'))}
process.exitCode = (await buildBeforeOclif(JSON.parse(process.argv[1]))) ?? 99`
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, JSON.stringify(args)], {
      encoding: 'latin1',
      env: env(),
    })
    return {status: r.status, stdout: r.stdout, stderr: r.stderr}
  }

  it('build TREE writes the same image and prints the same digest', () => {
    const tree = join(work, 'tree')
    mkdirSync(join(tree, 'd/e'), {recursive: true})
    writeFileSync(join(tree, 'empty'), '')
    writeFileSync(join(tree, 'small'), 'x'.repeat(64))
    writeFileSync(join(tree, 'd/big'), Buffer.alloc(3 * 4096 + 5, 7))
    writeFileSync(join(tree, 'd/e/linked'), Buffer.alloc(70_000, 1))
    linkSync(join(tree, 'd/e/linked'), join(tree, 'linked-2'))
    symlinkSync('d/big', join(tree, 'link'))
    const a = join(work, 'tree-early.cfs')
    const b = join(work, 'tree-oclif.cfs')
    const e = earlyModule([tree, '-o', a])
    const o = oclif(['build', tree, '-o', b])
    assert.equal(e.status, 0, e.stderr)
    assert.equal(o.status, 0, o.stderr)
    assert.equal(e.stdout, o.stdout)
    assert.match(e.stdout, /^[0-9a-f]{64}\n$/)
    assert.ok(readFileSync(a).equals(readFileSync(b)))
  })

  it('build TREE leaves container images to oclif', () => {
    const a = join(work, 'none.cfs')
    for (const source of ['oci:' + join(work, 'no-such-layout'), 'docker://']) {
      assert.equal(earlyModule([source, '-o', a]).status, 99, source)
    }
    assert.equal(existsSync(a), false)
  })

  it('build TREE reports its own failures as oclif does, without running again', () => {
    const tree = join(work, 'small-tree')
    mkdirSync(tree, {recursive: true})
    writeFileSync(join(tree, 'file'), Buffer.alloc(10_000, 3))
    const cases: [source: string, output: string, error: RegExp][] = [
      [join(work, 'no-such-tree'), join(work, 'none.cfs'), /no such directory/],
      // Refused before the tree is scanned, not after it was hashed.
      [tree, join(work, 'no-such-dir', 'x.cfs'), /the directory .*no-such-dir does not exist$/],
      [tree, tree, /: is a directory$/],
    ]
    for (const [source, output, error] of cases) {
      const e = earlyModule([source, '-o', output])
      const o = oclif(['build', source, '-o', output])
      assert.notEqual(e.status, 99, `${source}: the early path handed its failure on`)
      assert.equal(e.status, 3)
      assert.equal(e.status, o.status)
      assert.equal(e.stdout, '')
      assert.deepEqual(errorLines(e.stderr), errorLines(o.stderr))
      assert.equal(errorLines(e.stderr).length, 1)
      assert.match(errorLines(e.stderr)[0]!, error)
    }
    assert.equal(existsSync(join(work, 'no-such-dir')), false)
  })

  it(
    'build refuses an OUTPUT under a file or on a read-only file system, writing nothing',
    {
      skip: needRoot('a read-only bind mount'),
    },
    () => {
      const tree = join(work, 'small-tree')
      mkdirSync(tree, {recursive: true})
      writeFileSync(join(tree, 'file'), Buffer.alloc(10_000, 3))
      const file = join(work, 'a-file')
      writeFileSync(file, 'not a directory')
      const ro = join(work, 'read-only')
      mkdirSync(ro)
      run('mount', ['--bind', ro, ro])
      try {
        run('mount', ['-o', 'remount,bind,ro', ro])
        const cases: [output: string, error: RegExp][] = [
          [join(file, 'x.cfs'), /a-file is not a directory$/],
          [join(ro, 'x.cfs'), /cannot write in .*read-only \(a read-only file system\)$/],
        ]
        for (const [output, error] of cases) {
          const e = earlyModule([tree, '-o', output])
          const o = oclif(['build', tree, '-o', output])
          assert.equal(e.status, 3)
          assert.equal(o.status, 3)
          assert.equal(e.stdout, '')
          assert.deepEqual(errorLines(e.stderr), errorLines(o.stderr))
          assert.equal(errorLines(e.stderr).length, 1)
          assert.match(errorLines(e.stderr)[0]!, error)
        }
        assert.equal(readFileSync(file, 'utf8'), 'not a directory')
        assert.deepEqual(readdirSync(ro), [])
      } finally {
        run('umount', [ro])
      }
    },
  )

  it('image dump prints the same text', () => {
    const e = early(['image', 'dump', imagePath])
    const o = oclif(['image', 'dump', imagePath])
    assert.equal(e.status, 0, e.stderr)
    assert.equal(o.status, 0, o.stderr)
    assert.ok(e.stdout.length > 0)
    assert.equal(e.stdout, o.stdout)
  })

  it('image dump refuses a bad image the same way, printing nothing', () => {
    const bad = join(work, 'bad.cfs')
    writeFileSync(bad, image.subarray(0, 5000))
    for (const path of [bad, join(work, 'no-such.cfs')]) {
      const e = early(['image', 'dump', path])
      const o = oclif(['image', 'dump', path])
      assert.equal(e.status, 3)
      assert.equal(e.status, o.status)
      assert.equal(e.stdout, '')
      assert.equal(o.stdout, '')
      assert.deepEqual(errorLines(e.stderr), errorLines(o.stderr))
      assert.equal(errorLines(e.stderr).length, 1, e.stderr)
    }
  })

  it('image dump into a pipe closed early ends quietly', () => {
    const r = spawnSync(
      'sh',
      ['-c', `"${process.execPath}" "${RUN_JS}" image dump "${imagePath}" | head -c 10`],
      {
        encoding: 'latin1',
      },
    )
    assert.equal(r.status, 0)
    assert.equal(r.stdout.length, 10)
    assert.doesNotMatch(r.stderr, /Error|EPIPE/)
  })
})
