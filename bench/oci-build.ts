// Building from a container image, side by side in one run with unpack-then-build:
//   1. `cfsboot build oci-archive:FILE` (layers streamed: hashed and stored as they pass);
//   2. `tar` unpacking the same archive's layer to a directory (the floor of reading it) plus
//      `cfsboot build` of the unpacked tree;
//   3. upstream `mkcomposefs --digest-store` of the unpacked tree (when a build exists:
//      MKCOMPOSEFS=/path, default /tmp/composefs-src/build/tools/mkcomposefs).
// Every build fills a fresh objects directory. The archive (one gzip layer of the large Debian
// tree, test/helpers/corpus.sh debian-large) is made once under BENCH_CACHE. Warm page cache;
// median of --runs alternating runs. Prints a markdown table.
//
//   node dist/bench/oci-build.js [--tree DIR] [--runs N]
import {execFileSync, spawnSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {
  createReadStream,
  existsSync,
  mkdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import {join} from 'node:path'

import {BENCH_CACHE, CFSBOOT, median, table, timeCommand, warmCache} from './lib.js'

const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const TREE = arg('--tree', '/var/cache/cfsboot-test/debian-large')
const RUNS = Number(arg('--runs', '3'))
const MKCOMPOSEFS = process.env.MKCOMPOSEFS ?? '/tmp/composefs-src/build/tools/mkcomposefs'
const WORK = join(BENCH_CACHE, 'oci')

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256')
  for await (const c of createReadStream(path)) h.update(c as Buffer)
  return 'sha256:' + h.digest('hex')
}

/** One-layer OCI archive of TREE (made once): GNU tar PAX layer, gzip -6, as image builders write. */
async function makeArchive(): Promise<{archive: string; layerMember: string}> {
  mkdirSync(WORK, {recursive: true})
  const archive = join(WORK, 'debian-large.oci.tar')
  const metaPath = archive + '.layer'
  if (existsSync(archive) && existsSync(metaPath))
    return {archive, layerMember: readFileSync(metaPath, 'utf8')}
  const layout = join(WORK, 'layout')
  rmSync(layout, {recursive: true, force: true})
  mkdirSync(join(layout, 'blobs/sha256'), {recursive: true})
  const tarFile = join(WORK, 'layer.tar')
  execFileSync('sh', [
    '-c',
    `tar --format=pax --numeric-owner --xattrs '--xattrs-include=*' --sort=name -C "$1" -cf "$2" .`,
    'sh',
    TREE,
    tarFile,
  ])
  const diffId = await sha256File(tarFile)
  execFileSync('gzip', ['-6', '-n', tarFile])
  const gz = tarFile + '.gz'
  const digest = await sha256File(gz)
  const layerMember = `blobs/sha256/${digest.slice(7)}`
  renameSync(gz, join(layout, layerMember))
  const blob = (o: unknown): {digest: string; size: number} => {
    const b = Buffer.from(JSON.stringify(o))
    const d = 'sha256:' + createHash('sha256').update(b).digest('hex')
    writeFileSync(join(layout, 'blobs/sha256', d.slice(7)), b)
    return {digest: d, size: b.length}
  }
  const config = blob({
    architecture: 'amd64',
    os: 'linux',
    rootfs: {type: 'layers', diff_ids: [diffId]},
    config: {},
  })
  const manifest = blob({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: {mediaType: 'application/vnd.oci.image.config.v1+json', ...config},
    layers: [
      {
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest,
        size: statSync(join(layout, layerMember)).size,
      },
    ],
  })
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({imageLayoutVersion: '1.0.0'}))
  writeFileSync(
    join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [{mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest}],
    }),
  )
  execFileSync('tar', ['-C', layout, '-cf', archive + '.tmp', '.'])
  renameSync(archive + '.tmp', archive)
  rmSync(layout, {recursive: true, force: true})
  writeFileSync(metaPath, layerMember)
  return {archive, layerMember}
}

function digestOf(image: string): string {
  return execFileSync('fsverity', ['digest', '--compact', image], {encoding: 'utf8'}).trim()
}

async function main(): Promise<void> {
  if (!existsSync(TREE)) throw new Error(`no tree at ${TREE} (test/helpers/corpus.sh debian-large)`)
  const t0 = Date.now()
  const {archive, layerMember} = await makeArchive()
  console.error(
    `archive ${archive}: ${(statSync(archive).size / 1e6).toFixed(0)} MB (made/found in ${((Date.now() - t0) / 1000).toFixed(0)} s)`,
  )
  const haveUpstream = existsSync(MKCOMPOSEFS)
  const objects = join(WORK, 'objects')
  const unpacked = join(WORK, 'unpacked')
  const fresh = (p: string): void => {
    rmSync(p, {recursive: true, force: true})
  }
  const times = {
    stream: [] as number[],
    unpack: [] as number[],
    build: [] as number[],
    upstream: [] as number[],
  }
  let same = true
  for (let r = 0; r < RUNS; r++) {
    warmCache(archive)
    fresh(objects)
    times.stream.push(
      timeCommand(CFSBOOT, [
        'build',
        `oci-archive:${archive}`,
        '-o',
        join(WORK, 'stream.cfs'),
        '--objects',
        objects,
      ]),
    )
    fresh(objects)
    fresh(unpacked)
    mkdirSync(unpacked)
    times.unpack.push(
      timeCommand('sh', [
        '-c',
        `tar -xOf "$1" "./$2" | tar -xz --numeric-owner --xattrs '--xattrs-include=*' -C "$3"`,
        'sh',
        archive,
        layerMember,
        unpacked,
      ]),
    )
    times.build.push(
      timeCommand(CFSBOOT, ['build', unpacked, '-o', join(WORK, 'unpacked.cfs'), '--objects', objects]),
    )
    same &&= digestOf(join(WORK, 'stream.cfs')) === digestOf(join(WORK, 'unpacked.cfs'))
    if (haveUpstream) {
      fresh(objects)
      times.upstream.push(
        timeCommand(MKCOMPOSEFS, [`--digest-store=${objects}`, unpacked, join(WORK, 'upstream.cfs')]),
      )
    }
    console.error(`run ${r + 1}/${RUNS} done`)
  }
  const s = (ms: number): string => (ms / 1000).toFixed(1)
  const u = median(times.unpack)
  const rows: (string | number)[][] = [
    ['`cfsboot build oci-archive:` (streamed)', s(median(times.stream)), '—', s(median(times.stream))],
    ['`tar -xz` + `cfsboot build DIR`', s(u), s(median(times.build)), s(u + median(times.build))],
  ]
  if (haveUpstream)
    rows.push([
      '`tar -xz` + upstream `mkcomposefs --digest-store`',
      s(u),
      s(median(times.upstream)),
      s(u + median(times.upstream)),
    ])
  console.log(table(['', 'unpack s', 'build s', 'total s'], rows))
  console.log(
    `\nstreamed image == image of the unpacked tree: ${same ? 'yes (same fs-verity digest)' : 'NO'}`,
  )
  fresh(objects)
  fresh(unpacked)
  spawnSync('sync')
}

await main()
