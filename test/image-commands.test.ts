// The `cfsboot image …` commands, run as the CLI: output formats, the published JSON schema,
// exit codes (3 for a bad image, 6 for missing objects), one-line errors.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, it} from 'node:test'

import {Ajv} from 'ajv'

import {dumpToString} from '../src/format/dump/write.js'
import {imageDigest, listObjects, readImage} from '../src/format/erofs/reader.js'
import {writeImage} from '../src/format/erofs/writer.js'
import {objectPath} from '../src/tree/node.js'
import {dir, externalFile, richTree} from './helpers/sample-trees.js'
import {projectRoot} from './helpers/upstream.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-image-cmd-'))
after(() => rmSync(work, {recursive: true, force: true}))

function cli(...args: string[]): {status: number | null; stdout: string; stderr: string} {
  const r = spawnSync(process.execPath, [join(projectRoot, 'bin', 'run.js'), ...args], {encoding: 'latin1'})
  return {status: r.status, stdout: r.stdout, stderr: r.stderr}
}

/** The CLI's own error line (other lines on stderr may be Node warnings). */
function errorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.includes('Error:'))
  assert.equal(lines.length, 1, stderr)
  assert.doesNotMatch(stderr, /^\s+at /m, 'no stack trace')
  return lines[0]!
}

describe('cfsboot image', () => {
  const written = writeImage(richTree())
  const imagePath = join(work, 'rich.cfs')
  writeFileSync(imagePath, written.image)
  const objects = listObjects(readImage(written.image))
  const badPath = join(work, 'bad.cfs')
  writeFileSync(badPath, written.image.subarray(0, 5000))

  it('info --json matches docs/schemas/image-info.json and the image', () => {
    const r = cli('image', 'info', imagePath, '--json')
    assert.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout)
    const schema = JSON.parse(readFileSync(join(projectRoot, 'docs', 'schemas', 'image-info.json'), 'utf8'))
    const validate = new Ajv({strict: true}).compile(schema)
    assert.ok(validate(out), JSON.stringify(validate.errors))
    assert.deepEqual(out, {
      digest: imageDigest(written.image).toString('hex'),
      entries: readImage(written.image).inodeCount,
      size: written.image.length,
      referencedObjects: 3,
      formatVersion: 1,
    })
  })

  it('info prints the same facts for people', () => {
    const r = cli('image', 'info', imagePath)
    assert.equal(r.status, 0, r.stderr)
    assert.match(r.stdout, new RegExp(`digest: +${written.digest.toString('hex')}`))
    assert.match(r.stdout, /referenced objects: +3\n/)
    assert.match(r.stdout, /format version: +1\n/)
  })

  it('dump prints the composefs-dump text of the image', () => {
    const r = cli('image', 'dump', imagePath)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, dumpToString(readImage(written.image).root, {xattrOrder: 'tree'}))
    assert.match(r.stdout, /^\/ \d+ 40755 /)
  })

  it('objects lists each object once, sorted', () => {
    const r = cli('image', 'objects', imagePath)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, objects.join('\n') + '\n')
    assert.deepEqual(JSON.parse(cli('image', 'objects', imagePath, '--json').stdout), {objects})
  })

  it('missing-objects prints nothing and exits 0 when the directory is complete', () => {
    const dir = join(work, 'complete')
    for (const o of objects) {
      mkdirSync(join(dir, o.slice(0, 2)), {recursive: true})
      writeFileSync(join(dir, o), 'x')
    }
    const r = cli('image', 'missing-objects', imagePath, '--objects', dir)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, '')
  })

  it('missing-objects prints what is missing and exits 6', () => {
    const dir = join(work, 'partial')
    mkdirSync(join(dir, objects[1]!.slice(0, 2)), {recursive: true})
    writeFileSync(join(dir, objects[1]!), 'x')
    const r = cli('image', 'missing-objects', imagePath, '--objects', dir)
    assert.equal(r.status, 6)
    assert.equal(r.stdout, [objects[0], objects[2]].join('\n') + '\n')
    assert.match(errorLine(r.stderr), /2 object\(s\) missing/)
  })

  it('a damaged or absent image is one error line and exit 3', () => {
    for (const cmd of ['dump', 'info', 'objects']) {
      const r = cli('image', cmd, badPath)
      assert.equal(r.status, 3, cmd)
      assert.match(errorLine(r.stderr), /image: truncated/)
      assert.equal(cli('image', cmd, join(work, 'nope.cfs')).status, 3)
    }
    const r = cli('image', 'missing-objects', badPath, '--objects', work)
    assert.equal(r.status, 3)
  })

  it('an image whose metacopy digest and redirect name different objects is refused (EINVALID)', () => {
    const root = dir()
    const f = externalFile(5000, 7)
    f.payload = objectPath(Buffer.alloc(32, 8))
    root.addChild('liar', f)
    const liar = join(work, 'liar.cfs')
    writeFileSync(liar, writeImage(root).image)
    for (const cmd of ['info', 'objects']) {
      const r = cli('image', cmd, liar, '--json')
      assert.equal(r.status, 3, r.stderr)
      assert.equal(JSON.parse(r.stdout).error.code, 'EINVALID')
    }
    // `image dump` reads the image through its own walk (no tree): the same check, nothing printed.
    const r = cli('image', 'dump', liar)
    assert.equal(r.status, 3, r.stderr)
    assert.equal(r.stdout, '')
    assert.match(
      errorLine(r.stderr),
      /^Error: image: a file redirects to object \S+ but its fs-verity digest is [0-9a-f]{64} at nid \d+$/,
    )
  })
})
