// A full disk: the sysroot on a small loop-mounted ext4, a deploy whose objects do not fit.
// It must fail with one clear ENOSPC line and leave the sysroot exactly as it was (partial
// imports, temporary files and staging taken back), the previous default complete, fsck clean.
import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {run} from '../src/system/exec.js'
import {attachLoop, createSparseFile, detachLoop, makeExt4, mountDevice, unmount} from '../src/system/disk.js'
import {makeImage} from './helpers/images.js'
import {
  cli,
  defaultDigest,
  diffSnapshots,
  errorLines,
  incomplete,
  makeSysroot,
  notOneClearError,
  snapshot,
} from './helpers/sysroot.js'

const FS_SIZE = 16 * 1024 * 1024

const blob = (seed: string, size: number): Buffer => {
  const unit = Buffer.from(`${seed}~`)
  return Buffer.concat(Array.from({length: Math.ceil(size / unit.length)}, () => unit)).subarray(0, size)
}

async function whyNot(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'needs root to mount a loop device'
  for (const tool of ['mkfs.ext4', 'losetup', 'mount']) {
    const r = await run('sh', ['-c', `command -v ${tool}`], {reject: false})
    if (r.exitCode !== 0) return `${tool} is not installed`
  }
  return null
}

test('deploying an image whose objects do not fit: one ENOSPC line, nothing changed, the old default boots', async (t) => {
  const reason = await whyNot()
  if (reason) return t.skip(reason)
  const work = mkdtempSync(join(tmpdir(), 'cfsboot-disk-full-'))
  const disk = join(work, 'disk.img')
  const mnt = join(work, 'mnt')
  mkdirSync(mnt)
  await createSparseFile(disk, FS_SIZE)
  const loop = await attachLoop(disk)
  let mounted = false
  try {
    await makeExt4(loop, 'cfsboot-full')
    await mountDevice(loop, mnt)
    mounted = true
    const s = await makeSysroot({parent: mnt})

    // v1 fits (a few hundred KiB); v2 brings 24 MiB of new objects into a 16 MiB filesystem.
    const v1 = makeImage(join(work, 'v1'), {version: '1', files: {'/usr/share/a': blob('a', 200_000)}})
    const big: Record<string, Buffer> = {'/usr/share/a': blob('a', 200_000)}
    for (let i = 0; i < 48; i++) big[`/usr/share/big/b${i}`] = blob(`big-${i}`, 512 * 1024)
    const v2 = makeImage(join(work, 'v2'), {version: '2', files: big})
    let r = await cli(s, ['deploy', v1.image, '--objects', v1.objects])
    assert.equal(r.code, 0, r.stderr)

    const before = snapshot(s.dir)
    r = await cli(s, ['deploy', v2.image, '--objects', v2.objects])
    assert.equal(notOneClearError(r, 1), '')
    assert.match(errorLines(r.stderr)[0]!, /no space left/i)
    assert.deepEqual(diffSnapshots(before, snapshot(s.dir)), [], 'the failed deploy left files behind')
    assert.equal(await defaultDigest(s.paths), v1.digest)
    assert.deepEqual(await incomplete(s.paths, v1.digest), [])
    const fsck = await cli(s, ['fsck'])
    assert.equal(fsck.code, 0, fsck.stderr + fsck.stdout)

    // The space is really back: a smaller update deploys.
    const v3 = makeImage(join(work, 'v3'), {
      version: '3',
      files: {'/usr/share/a': blob('a', 200_000), '/usr/share/c': blob('c', 2 * 1024 * 1024)},
    })
    r = await cli(s, ['deploy', v3.image, '--objects', v3.objects])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(await defaultDigest(s.paths), v3.digest)
    assert.deepEqual(await incomplete(s.paths, v3.digest), [])
    assert.deepEqual(await incomplete(s.paths, v1.digest), [])
  } finally {
    if (mounted) await unmount(mnt)
    await detachLoop(loop)
    rmSync(work, {recursive: true, force: true})
  }
})
