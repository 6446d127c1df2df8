// `cfsboot build oci:…` against `cfsboot build` of the same image unpacked to a directory, on a
// real Debian tree in three layers (deletions, an opaque directory, overrides, hardlinks, long
// and non-UTF-8 names, xattrs including security.capability, a device, a FIFO, ns mtimes,
// owners), and the transports (layout dir, OCI archive, docker archive), zstd, the layer cache.
//
// The "unpacked correctly" side is `umoci raw unpack` run as root: as root umoci applies every
// owner, mode, device node, xattr and whiteout as the layers say (no rootless remapping, no
// user.rootlesscontainers xattr), on ext4 which keeps trusted.*/security.* xattrs and ns mtimes.

import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
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
import {randomBytes} from 'node:crypto'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {buildImage} from '../src/build.js'
import {gzipLayer, tarDir, writeLayout, zstdLayer, type LayerBlob} from './helpers/oci.js'

const MINBASE = '/var/cache/cfsboot-test/debian-minbase'
const isRoot = process.getuid?.() === 0
const have = (tool: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`])
    return true
  } catch {
    return false
  }
}
const skip = !isRoot
  ? 'needs root (device nodes, owners and security.capability in the layers; umoci unpack as root)'
  : !existsSync(MINBASE)
    ? `no corpus at ${MINBASE} (test/helpers/corpus.sh debian-minbase)`
    : !have('umoci') || !have('zstd') || !have('setfattr') || !have('skopeo')
      ? 'needs umoci, skopeo, zstd and setfattr (Debian packages umoci, skopeo, zstd, attr)'
      : false

const sh = (cmd: string, args: string[]): string =>
  execFileSync(cmd, args, {encoding: 'utf8', maxBuffer: 1 << 30})

/** Layer 2: overrides, whiteouts, an opaque directory and every kind of entry. */
function makeUpper2(dir: string): void {
  for (const d of ['etc', 'usr/share/man/man1', 'opt/sub']) mkdirSync(join(dir, d), {recursive: true})
  writeFileSync(join(dir, 'etc/hostname'), 'layer2-host\n')
  writeFileSync(join(dir, 'etc/.wh.motd'), '')
  writeFileSync(join(dir, 'usr/share/.wh.doc'), '')
  writeFileSync(join(dir, 'usr/share/man/.wh..wh..opq'), '')
  writeFileSync(join(dir, 'usr/share/man/man1/new.1'), '.TH NEW 1\n'.repeat(20))
  writeFileSync(join(dir, 'opt/big.bin'), randomBytes(300_000))
  linkSync(join(dir, 'opt/big.bin'), join(dir, 'opt/hard1'))
  linkSync(join(dir, 'opt/big.bin'), join(dir, 'opt/sub/hard2'))
  const long1 = 'd'.repeat(150)
  mkdirSync(join(dir, 'opt', long1))
  writeFileSync(
    join(dir, 'opt', long1, 'f'.repeat(250)),
    "a file with a long path, beyond ustar's 100+155 bytes\n".repeat(3),
  )
  writeFileSync(Buffer.from(join(dir, 'opt/caf\xe9-latin1'), 'latin1'), 'not UTF-8\n')
  writeFileSync(join(dir, 'opt/caps'), randomBytes(5000))
  // cap_net_raw+ep, as `setcap` writes it (VFS_CAP_REVISION_2)
  sh('setfattr', [
    '-n',
    'security.capability',
    '-v',
    '0x0000000200200000000000000000000000000000',
    join(dir, 'opt/caps'),
  ])
  sh('setfattr', ['-n', 'user.note', '-v', 'hello', join(dir, 'opt/caps')])
  sh('setfattr', ['-n', 'trusted.thing', '-v', '0x00ff', join(dir, 'opt/sub')])
  sh('mkfifo', [join(dir, 'opt/fifo')])
  sh('mknod', [join(dir, 'opt/null'), 'c', '1', '3'])
  sh('mknod', [join(dir, 'opt/blk'), 'b', '259', '300000'])
  symlinkSync('../etc/hostname', join(dir, 'opt/link'))
  symlinkSync('/'.padEnd(3000, 'x'), join(dir, 'opt/longlink'))
  writeFileSync(join(dir, 'opt/owned'), 'owned\n')
  sh('chown', ['1234:5678', join(dir, 'opt/owned')])
  writeFileSync(join(dir, 'opt/suid'), randomBytes(100))
  sh('chmod', ['4755', join(dir, 'opt/suid')])
  sh('touch', [
    '-h',
    '-d',
    '2020-01-01 00:00:00.123456789 UTC',
    join(dir, 'opt/owned'),
    join(dir, 'opt/link'),
  ])
  sh('touch', ['-d', '1960-06-01 00:00:00.5 UTC', join(dir, 'opt/suid')])
}

/** Layer 3: deletes a name of a hardlinked file, replaces a file by a directory, adds one more. */
function makeUpper3(dir: string): void {
  for (const d of ['opt', 'etc/debian_version']) mkdirSync(join(dir, d), {recursive: true})
  writeFileSync(join(dir, 'opt/.wh.big.bin'), '')
  writeFileSync(join(dir, 'etc/debian_version/now-a-dir'), 'x'.repeat(100))
  writeFileSync(join(dir, 'etc/layer3'), randomBytes(70000))
}

test(
  'oci: a 3-layer Debian image builds the same bytes as its umoci-unpacked tree; oci-archive, docker-archive, zstd and the layer cache agree',
  {skip},
  async (t) => {
    const work = mkdtempSync(join(tmpdir(), 'cfsboot-oci-'))
    if (!process.env.CFSBOOT_KEEP) t.after(() => rmSync(work, {recursive: true, force: true}))
    const up2 = join(work, 'up2')
    const up3 = join(work, 'up3')
    makeUpper2(up2)
    makeUpper3(up3)
    const tars = [tarDir(MINBASE), tarDir(up2), tarDir(up3)]
    const gz = tars.map(gzipLayer)
    const layout = join(work, 'layout')
    writeLayout(layout, gz, {tag: 'v1'})

    const rootfs = join(work, 'rootfs')
    sh('umoci', ['raw', 'unpack', '--image', `${layout}:v1`, rootfs])
    // umoci makes the rootfs directory itself; every layer has a "./" entry and the topmost one
    // says what the root is (as for any other directory): give the unpacked root that metadata.
    const rootMeta = sh('stat', ['-c', '%a %u %g %.9Y', up3]).trim().split(' ')
    sh('chmod', [rootMeta[0]!, rootfs])
    sh('chown', [`${rootMeta[1]}:${rootMeta[2]}`, rootfs])
    sh('touch', ['-d', `@${rootMeta[3]}`, rootfs])
    // The unpack really applied the layers:
    assert.ok(!existsSync(join(rootfs, 'usr/share/doc')))
    assert.ok(!existsSync(join(rootfs, 'etc/motd')))
    assert.deepEqual(readdirSync(join(rootfs, 'usr/share/man')), ['man1'])
    assert.equal(readFileSync(join(rootfs, 'etc/hostname'), 'utf8'), 'layer2-host\n')

    const fromDir = await buildImage({
      source: rootfs,
      output: join(work, 'dir.cfs'),
      objects: join(work, 'objects-dir'),
    })
    const objects = join(work, 'objects')
    const fromOci = await buildImage({source: `oci:${layout}:v1`, output: join(work, 'oci.cfs'), objects})
    assert.equal(fromOci.digest, fromDir.digest)
    assert.deepEqual(readFileSync(join(work, 'oci.cfs')), readFileSync(join(work, 'dir.cfs')))
    assert.deepEqual(fromOci.files, fromDir.files)
    assert.deepEqual(fromOci.oci && {layers: fromOci.oci.layers, cached: fromOci.oci.cachedLayers}, {
      layers: 3,
      cached: 0,
    })
    // Every object the image needs is there, byte for byte the directory build's. (The OCI store
    // holds more: the contents of files a later layer deleted were imported with their layer.)
    const list = (d: string): string[] =>
      sh('sh', [
        '-c',
        `cd ${d} && find . -path ./.layers -prune -o -type f -print | sort | xargs sha256sum`,
      ]).split('\n')
    const inOci = new Set(list(objects))
    const missing = list(join(work, 'objects-dir')).filter((l) => !inOci.has(l))
    assert.deepEqual(missing, [])
    assert.ok(fromOci.objects.added >= fromDir.objects.added)

    // Second build: every layer comes from the cache, nothing is added, same image.
    const again = await buildImage({source: `oci:${layout}:v1`, output: join(work, 'again.cfs'), objects})
    assert.equal(again.digest, fromDir.digest)
    assert.equal(again.oci!.cachedLayers, 3)
    assert.equal(again.objects.added, 0)

    // zstd for the top two layers (and an uncompressed... no: gzip base), an OCI archive by skopeo,
    // a docker archive by skopeo: all the same image. A fresh store, so nothing is cached.
    const mixed = join(work, 'mixed')
    writeLayout(mixed, [gz[0]!, zstdLayer(tars[1]!), zstdLayer(tars[2]!)] as LayerBlob[], {tag: 'v1'})
    const z = await buildImage({
      source: `oci:${mixed}:v1`,
      output: join(work, 'z.cfs'),
      objects: join(work, 'objects-z'),
    })
    assert.equal(z.digest, fromDir.digest)
    assert.equal(z.oci!.cachedLayers, 0)

    const ociArchive = join(work, 'image.oci.tar')
    sh('skopeo', ['copy', '-q', `oci:${layout}:v1`, `oci-archive:${ociArchive}:v1`])
    const a = await buildImage({source: `oci-archive:${ociArchive}:v1`, output: join(work, 'a.cfs')})
    assert.equal(a.digest, fromDir.digest)
    assert.equal(a.objects.dir, null)

    const dockerArchive = join(work, 'image.docker.tar')
    sh('skopeo', ['copy', '-q', `oci:${layout}:v1`, `docker-archive:${dockerArchive}:cfsboot/test:v1`])
    const d = await buildImage({
      source: `docker-archive:${dockerArchive}`,
      output: join(work, 'd.cfs'),
      objects,
    })
    assert.equal(d.digest, fromDir.digest)
    // Same diff IDs as the layout's layers: all three recognised from the cache.
    assert.equal(d.oci!.cachedLayers, 3)
  },
)
