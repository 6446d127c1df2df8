// `buildImage` from a directory tree: every file's content reaches the image once, whichever
// way it was found (during the walk, or after it for hardlinked files), with any thread count.
import assert from 'node:assert/strict'
import {linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {buildImage} from '../src/build.js'
import {readImage} from '../src/format/erofs/reader.js'
import {FsNode, objectPath} from '../src/tree/node.js'
import {digestFile} from '../src/verity/pool.js'
import {needTool} from './helpers/tools.js'

function find(root: FsNode, path: string): FsNode {
  let n = root
  for (const part of path.split('/')) n = n.children!.get(part)!
  return n.linkTo ?? n
}

test('tree build: inline, hashed and hardlinked files', {skip: needTool('getfattr', 'attr')}, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cfsboot-build-tree-'))
  t.after(() => rmSync(dir, {recursive: true, force: true}))
  const tree = join(dir, 'tree')
  mkdirSync(join(tree, 'd/e'), {recursive: true})
  writeFileSync(join(tree, 'empty'), '')
  writeFileSync(join(tree, 'small'), 'x'.repeat(64))
  writeFileSync(join(tree, 'd/big'), Buffer.alloc(3 * 4096 + 5, 7))
  writeFileSync(join(tree, 'd/e/small-linked'), 'tiny')
  linkSync(join(tree, 'd/e/small-linked'), join(tree, 'small-2'))
  writeFileSync(join(tree, 'big-linked'), Buffer.alloc(70_000, 1))
  linkSync(join(tree, 'big-linked'), join(tree, 'd/big-linked-2'))
  for (let i = 0; i < 300; i++) writeFileSync(join(tree, 'd/e', `f${i}`), `file ${i} `.repeat(20))

  for (const threads of [undefined, 1]) {
    const output = join(dir, `image-${threads ?? 'default'}.cfs`)
    const r = await buildImage({source: tree, output, ...(threads !== undefined && {threads})})
    assert.equal(r.files.regular, 305)
    assert.equal(r.files.inline, 2)
    assert.equal(r.files.external, 302)
    const {root} = readImage(readFileSync(output))
    assert.equal(find(root, 'empty').size, 0)
    assert.equal(find(root, 'small').content!.toString(), 'x'.repeat(64))
    assert.equal(find(root, 'small-2').content!.toString(), 'tiny')
    for (const p of ['d/big', 'big-linked', 'd/big-linked-2', 'd/e/f0', 'd/e/f299']) {
      const digest = await digestFile(join(tree, p))
      assert.deepEqual(find(root, p).digest, digest, p)
      assert.equal(find(root, p).payload, objectPath(digest), p)
    }
  }
})
