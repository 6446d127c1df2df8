// The /etc merge's conflict rule (src/deploy/etc-merge.ts): a path is a conflict only when the
// image changed it AND the administrator's version differs from the new image's. Lock files
// systemd and shadow create at boot are not conflicts.
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, test} from 'node:test'

import {carryEtc} from '../src/deploy/etc-merge.js'
import {FsNode, S_IFDIR, S_IFREG} from '../src/tree/node.js'
import {fsverityDigest} from '../src/verity/merkle.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-etc-merge-'))
after(() => rmSync(work, {recursive: true, force: true}))

/** A root with /etc holding `files` (content inline up to 64 bytes, else by digest). */
function image(files: Record<string, {data: string; mode?: number}>): FsNode {
  const root = new FsNode(S_IFDIR | 0o755)
  const etc = new FsNode(S_IFDIR | 0o755)
  root.addChild('etc', etc)
  for (const [name, f] of Object.entries(files)) {
    const n = new FsNode(S_IFREG | (f.mode ?? 0o644))
    const data = Buffer.from(f.data)
    n.size = data.length
    if (data.length > 64) n.digest = fsverityDigest(data)
    else if (data.length) n.content = data
    etc.addChild(name, n)
  }
  return root
}

test('conflicts: changed by both; not: empty lock files, unchanged empty files, admin already has the new content', async () => {
  const big = (s: string): string => `${s}\n`.repeat(20)
  const oldRoot = image({
    '.pwd.lock': {data: '', mode: 0o600},
    'empty.conf': {data: ''},
    motd: {data: big('old motd')},
    hosts: {data: 'old hosts\n'},
    'same.conf': {data: big('same')},
  })
  const newRoot = image({
    '.pwd.lock': {data: '', mode: 0o644}, // even a changed mode: an empty lock file is no conflict
    'empty.conf': {data: ''},
    motd: {data: big('new motd')},
    hosts: {data: 'new hosts\n'},
    'same.conf': {data: big('same')},
  })
  const from = join(work, 'from')
  mkdirSync(from)
  writeFileSync(join(from, '.pwd.lock'), '', {mode: 0o600})
  writeFileSync(join(from, 'empty.conf'), '', {mode: 0o644})
  writeFileSync(join(from, 'motd'), big('new motd'), {mode: 0o644}) // already what v2 ships
  writeFileSync(join(from, 'hosts'), 'my hosts\n', {mode: 0o644}) // a real conflict
  writeFileSync(join(from, 'same.conf'), 'mine\n', {mode: 0o644}) // image unchanged: carried
  const r = await carryEtc({fromUpper: from, oldRoot, newRoot, toUpper: join(work, 'to')})
  assert.equal(r.carried, 5)
  assert.deepEqual(r.conflicts, ['/etc/hosts'])
})
