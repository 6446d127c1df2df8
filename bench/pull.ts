// Benchmark of network updates on loopback: a release of N objects (default 30,000) pulled into
// an empty store, then a 5 % update, from Debian's nginx (static repository) and from
// docker-registry (OCI); side by side with the transfer's floor — curl and wget fetching the same
// object files sequentially (one process, kept-alive connection) and in parallel — and with
// `skopeo copy` of an equivalent OCI image (the tree as one tar.gz layer; its update is a whole
// new layer, as OCI images have no per-file dedup).
//
//   node dist/bench/pull.js [--objects N] [--dir DIR] [--no-oci]
//
// Every server listens on 127.0.0.1. Prints a markdown table (time from spawn to exit).
import {execFileSync, spawnSync} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {makeImage} from '../test/helpers/images.js'
import {describeSysroot, REPO, RUN_JS} from '../test/helpers/sysroot.js'
import {startNginx, startRegistry} from '../test/helpers/servers.js'
import {initSysroot} from '../src/deploy/deploy.js'
import {table, timeCommand} from './lib.js'

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const N = Number(arg('--objects') ?? 30000)
const CONNECTIONS = 16
const base = mkdtempSync(join(arg('--dir') ?? tmpdir(), 'cfsboot-bench-pull-'))
const rows: (string | number)[][] = []
const MB = (b: number): string => (b / 1e6).toFixed(1)

function cfsboot(args: string[], cwd = REPO): {ms: number; json: Record<string, unknown>} {
  const t = process.hrtime.bigint()
  const r = spawnSync(process.execPath, [RUN_JS, ...args, '--json'], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 1 << 28,
  })
  const ms = Number(process.hrtime.bigint() - t) / 1e6
  if (r.status !== 0) throw new Error(`cfsboot ${args.join(' ')}: ${r.stderr}`)
  return {ms, json: JSON.parse(r.stdout) as Record<string, unknown>}
}

/** Files of the release: sizes 256 B … 12 KiB (mean ~6 KiB), random content; `changed` get new bytes. */
function files(base: Record<string, Buffer> | null, changed: Set<number>): Record<string, Buffer> {
  const out: Record<string, Buffer> = {}
  for (let i = 0; i < N; i++) {
    const name = `/usr/share/bench/d${Math.floor(i / 1000)}/f${i}`
    out[name] = base && !changed.has(i) ? base[name]! : randomBytes(256 + ((i * 7919) % 12032))
  }
  return out
}

function writeTree(dir: string, f: Record<string, Buffer>): void {
  for (const [p, b] of Object.entries(f)) {
    mkdirSync(join(dir, p, '..'), {recursive: true})
    writeFileSync(join(dir, p), b)
  }
}

/** An OCI layout with the tree as one gzip layer (what a container build would push). */
function ociLayout(dir: string, tree: string, tag: string): void {
  mkdirSync(join(dir, 'blobs', 'sha256'), {recursive: true})
  const layerTmp = join(dir, 'layer.tgz')
  execFileSync('tar', ['-czf', layerTmp, '-C', tree, '.'])
  const sha = (p: string): string =>
    createHash('sha256')
      .update(execFileSync('cat', [p], {maxBuffer: 1 << 30}))
      .digest('hex')
  const layerSha = sha(layerTmp)
  execFileSync('mv', [layerTmp, join(dir, 'blobs', 'sha256', layerSha)])
  const diffId = execFileSync('sh', ['-c', `gzip -dc ${join(dir, 'blobs', 'sha256', layerSha)} | sha256sum`])
    .toString()
    .split(' ')[0]
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      rootfs: {type: 'layers', diff_ids: [`sha256:${diffId}`]},
    }),
  )
  const configSha = createHash('sha256').update(config).digest('hex')
  writeFileSync(join(dir, 'blobs', 'sha256', configSha), config)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${configSha}`,
        size: config.length,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${layerSha}`,
          size: statSync(join(dir, 'blobs', 'sha256', layerSha)).size,
        },
      ],
    }),
  )
  const mSha = createHash('sha256').update(manifest).digest('hex')
  writeFileSync(join(dir, 'blobs', 'sha256', mSha), manifest)
  writeFileSync(join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  writeFileSync(
    join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: `sha256:${mSha}`,
          size: manifest.length,
          annotations: {'org.opencontainers.image.ref.name': tag},
        },
      ],
    }),
  )
}

function objectUrls(repoUrl: string, paths: string[]): string[] {
  return paths.map((p) => `${repoUrl}/objects/${p}`)
}

/** curl and wget fetching `urls`: sequential (one process) and CONNECTIONS processes/streams. */
function floors(label: string, urls: string[], bytes: number): void {
  const d = join(base, `floor-${label}`)
  const run = (name: string, fn: (out: string) => number): void => {
    const out = join(d, name)
    mkdirSync(out, {recursive: true})
    const ms = fn(out)
    rows.push([`${label}: ${name}`, (ms / 1000).toFixed(2), MB(bytes), urls.length])
    rmSync(out, {recursive: true, force: true})
  }
  const cfg = (out: string, list: string[]): string => {
    const f = join(out, '..', `${Math.random()}.curl`)
    writeFileSync(f, list.map((u, i) => `url = "${u}"\noutput = "${out}/${i}"\n`).join(''))
    return f
  }
  run('curl sequential', (out) => timeCommand('curl', ['-sfS', '--no-progress-meter', '-K', cfg(out, urls)]))
  run(`curl --parallel ${CONNECTIONS}`, (out) =>
    timeCommand('curl', [
      '-sfS',
      '--no-progress-meter',
      '--parallel',
      '--parallel-max',
      String(CONNECTIONS),
      '-K',
      cfg(out, urls),
    ]),
  )
  run('wget sequential', (out) => {
    const list = join(d, 'urls.txt')
    writeFileSync(list, urls.join('\n') + '\n')
    return timeCommand('wget', ['-q', '-x', '-nH', '-P', out, '-i', list])
  })
  run(`wget x${CONNECTIONS} processes`, (out) => {
    const lists: string[] = []
    for (let k = 0; k < CONNECTIONS; k++) {
      const list = join(d, `urls-${k}.txt`)
      writeFileSync(list, urls.filter((_, i) => i % CONNECTIONS === k).join('\n') + '\n')
      lists.push(list)
    }
    const script = lists.map((l) => `wget -q -x -nH -P ${out} -i ${l} &`).join('\n') + '\nwait'
    return timeCommand('sh', ['-c', script])
  })
}

async function main(): Promise<void> {
  console.error(`# ${N} objects under ${base}`)
  const changed = new Set<number>()
  for (let i = 0; i < N; i += 20) changed.add(i) // 5 %
  const f1 = files(null, new Set())
  const f2 = files(f1, changed)
  const img1 = makeImage(join(base, 'v1'), {version: '1', files: f1})
  mkdirSync(join(base, 'v2'))
  const img2 = makeImage(join(base, 'v2'), {version: '2', files: f2})
  const inV1 = new Set(img1.objectPaths)
  const newPaths = [...new Set(img2.objectPaths.filter((p) => !inV1.has(p)))]
  const size = (dir: string, ps: string[]): number => ps.reduce((a, p) => a + statSync(join(dir, p)).size, 0)
  const allBytes = size(img1.objects, img1.objectPaths)
  const newBytes = size(img2.objects, newPaths)

  const keyPrefix = join(base, 'release')
  cfsboot(['keygen', keyPrefix])
  const repo = join(base, 'repo')
  const pub1 = cfsboot([
    'publish',
    img1.image,
    '--objects',
    img1.objects,
    '--to',
    repo,
    '--channel',
    'v1',
    '--key',
    `${keyPrefix}.key`,
  ])
  rows.push(['publish v1 (static dir)', (pub1.ms / 1000).toFixed(2), MB(allBytes), '—'])
  const pub2 = cfsboot([
    'publish',
    img2.image,
    '--objects',
    img2.objects,
    '--to',
    repo,
    '--channel',
    'v2',
    '--key',
    `${keyPrefix}.key`,
  ])
  rows.push(['publish v2 (5 % new, static dir)', (pub2.ms / 1000).toFixed(2), MB(newBytes), '—'])

  const nginx = await startNginx(join(base, 'nginx'), repo)
  const reg = await startRegistry(join(base, 'registry'))
  try {
    const device = async (name: string): Promise<ReturnType<typeof describeSysroot>> => {
      const s = describeSysroot(join(base, name))
      mkdirSync(s.dir, {recursive: true})
      await initSysroot(s.paths)
      writeFileSync(
        s.config,
        `[remote]\ntrusted-keys = ${keyPrefix}.pub\nconnections = ${CONNECTIONS}\ninsecure = true\n`,
      )
      return s
    }
    const pullRow = (
      label: string,
      s: ReturnType<typeof describeSysroot>,
      source: string,
      channel: string,
    ): void => {
      const r = cfsboot(['pull', source, '--channel', channel, '--sysroot', s.sysroot, '--config', s.config])
      const t = r.json['transfer'] as {requests: number; bytes: number}
      rows.push([label, (r.ms / 1000).toFixed(2), MB(t.bytes), t.requests])
    }
    const s = await device('device-static')
    pullRow(`cfsboot pull, ${N} objects, empty store (static, incl. deploy)`, s, nginx.url, 'v1')
    pullRow('cfsboot pull, 5 % update (static, incl. deploy)', s, nginx.url, 'v2')
    floors(`${N} objects`, objectUrls(nginx.url, img1.objectPaths), allBytes)
    floors('5 % update', objectUrls(nginx.url, newPaths), newBytes)

    // --no-oci: skip cfsboot's own OCI publish/pull (pushing N blobs one by one is slow).
    if (!process.argv.includes('--no-oci')) {
      const ref = `oci://127.0.0.1:${reg.port}/bench/cfsboot`
      const op1 = cfsboot([
        'publish',
        img1.image,
        '--objects',
        img1.objects,
        '--to',
        `${ref}:v1`,
        '--channel',
        'v1',
        '--key',
        `${keyPrefix}.key`,
        '--insecure',
      ])
      rows.push(['publish v1 (OCI registry)', (op1.ms / 1000).toFixed(2), MB(allBytes), '—'])
      cfsboot([
        'publish',
        img2.image,
        '--objects',
        img2.objects,
        '--to',
        `${ref}:v2`,
        '--channel',
        'v2',
        '--key',
        `${keyPrefix}.key`,
        '--insecure',
      ])
      const o = await device('device-oci')
      pullRow(`cfsboot pull, ${N} objects, empty store (OCI, incl. deploy)`, o, `${ref}:v1`, 'v1')
      pullRow('cfsboot pull, 5 % update (OCI, incl. deploy)', o, `${ref}:v2`, 'v2')
    }

    // skopeo: the same trees as single-layer OCI images.
    for (const [v, f] of [
      ['v1', f1],
      ['v2', f2],
    ] as const) {
      const tree = join(base, `tree-${v}`)
      writeTree(tree, f)
      const layout = join(base, `layout-${v}`)
      ociLayout(layout, tree, v)
      execFileSync(
        'skopeo',
        [
          'copy',
          '--dest-tls-verify=false',
          `oci:${layout}:${v}`,
          `docker://127.0.0.1:${reg.port}/bench/oci:${v}`,
        ],
        {stdio: 'ignore'},
      )
      rmSync(tree, {recursive: true, force: true})
    }
    const dest = join(base, 'skopeo-dest')
    for (const v of ['v1', 'v2']) {
      const ms = timeCommand('skopeo', [
        'copy',
        '--src-tls-verify=false',
        `docker://127.0.0.1:${reg.port}/bench/oci:${v}`,
        `oci:${dest}:${v}`,
      ])
      const layers = readdirSync(join(dest, 'blobs', 'sha256')).reduce(
        (a, b) => a + statSync(join(dest, 'blobs', 'sha256', b)).size,
        0,
      )
      rows.push([
        `skopeo copy ${v} (one tar.gz layer${v === 'v2' ? ', into the same layout' : ''})`,
        (ms / 1000).toFixed(2),
        MB(layers),
        '—',
      ])
    }
  } finally {
    await nginx.stop()
    await reg.stop()
  }
  console.log(
    `### Pull benchmark: ${N} objects (${MB(allBytes)} MB), 5 % update (${newPaths.length} objects, ${MB(newBytes)} MB)\n`,
  )
  console.log(table(['what', 'seconds', 'MB (received / on disk for skopeo)', 'requests'], rows))
  rmSync(base, {recursive: true, force: true})
}

await main()
