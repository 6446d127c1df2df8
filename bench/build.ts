// Build benchmarks, side by side with the reference tools, in one run:
//   1. a large Debian tree (test/helpers/corpus.sh debian-large, ~1.9 GB, ~32k entries):
//      `cfsboot build` (with and without an objects dir) against the time it takes just to hash
//      every byte of the tree on all cores (the floor a build can reach), upstream `mkcomposefs`
//      (when built: MKCOMPOSEFS=/path, default /tmp/composefs/build/tools/mkcomposefs) and
//      `mkfs.erofs` (a full-data EROFS image: a different job, shown for scale);
//   2. a generated 100,000-entry composefs dump: `cfsboot build --from-dump` against
//      `mkcomposefs --from-file`.
// Warm page cache; median of 3 alternating runs. Prints a markdown table.
//
//   node dist/bench/build.js [--tree DIR] [--entries N] [--runs N]
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {join, resolve, dirname} from 'node:path'
import {fileURLToPath} from 'node:url'

import {scanTree} from '../src/tree/scan.js'
import {DigestPool} from '../src/verity/pool.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const RUN_JS = join(REPO, 'bin', 'run.js')
const WORK = process.env.CFSBOOT_BENCH_CACHE ?? '/tmp/cfsboot-bench'

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1]! : fallback
}

const TREE = arg('--tree', '/var/cache/cfsboot-test/debian-large')
const ENTRIES = Number(arg('--entries', '100000'))
const RUNS = Number(arg('--runs', '3'))
const MKCOMPOSEFS = process.env.MKCOMPOSEFS ?? '/tmp/composefs/build/tools/mkcomposefs'

function run(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint()
  const r = spawnSync(cmd, args, {stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 1 << 26})
  const ms = Number(process.hrtime.bigint() - t) / 1e6
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr?.toString().split('\n')[0]}`)
  return ms
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

function has(tool: string): boolean {
  return tool.startsWith('/') ? existsSync(tool) : spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0
}

/** A composefs dump of `n` entries: directories of 1000 files with payloads, digests and xattrs. */
function makeDump(n: number): string {
  const lines = ['/ 4096 40755 2 0 0 0 1700000000.0 - - - security.selinux=system_u:object_r:root_t:s0']
  let made = 1
  for (let d = 0; made < n; d++) {
    lines.push(`/d${d} 4096 40755 2 0 0 0 1700000000.0 - - - user.dir=${d}`)
    made++
    for (let f = 0; f < 999 && made < n; f++, made++) {
      const hex = (d * 1000 + f).toString(16).padStart(64, '0')
      const xattr = f % 10 === 0 ? ` security.capability=\\x01\\x00\\x00\\x02` : ''
      lines.push(
        `/d${d}/f${f} ${1000 + f} 100644 1 0 0 0 1700000000.${f} ${hex.slice(0, 2)}/${hex.slice(2)} - ${hex}${xattr}`,
      )
    }
  }
  return lines.join('\n') + '\n'
}

interface Row {
  what: string
  ms: number
  note?: string
}

function table(title: string, rows: Row[], base: number): string {
  const out = [`### ${title}`, '', '| what | time | vs. first row |', '|---|---:|---:|']
  for (const r of rows)
    out.push(
      `| ${r.what} | ${(r.ms / 1000).toFixed(2)} s | ${(r.ms / base).toFixed(2)}× |${r.note ? ` ${r.note}` : ''}`,
    )
  return out.join('\n')
}

async function treeBench(): Promise<string> {
  if (!existsSync(TREE))
    return `(skipped: ${TREE} is missing; make it with test/helpers/corpus.sh debian-large)`
  mkdirSync(WORK, {recursive: true})
  spawnSync('sh', ['-c', `find "${TREE}" -type f -print0 | xargs -0 cat > /dev/null`])
  const {files} = await scanTree(TREE)
  const big = files.filter((f) => f.node.size > 64)
  const bytes = big.reduce((a, f) => a + f.node.size, 0)

  const hashRuns: number[] = []
  const build: number[] = []
  const buildObjects: number[] = []
  const mkc: number[] = []
  const mkfs: number[] = []
  const objects = join(WORK, 'objects')
  for (let i = 0; i < RUNS; i++) {
    const pool = new DigestPool()
    const t = process.hrtime.bigint()
    await pool.digestFiles(big.map((f) => f.path as string))
    hashRuns.push(Number(process.hrtime.bigint() - t) / 1e6)
    await pool.close()
    build.push(run('node', [RUN_JS, 'build', TREE, '-o', join(WORK, 'tree.cfs')]))
    rmSync(objects, {recursive: true, force: true})
    buildObjects.push(
      run('node', [RUN_JS, 'build', TREE, '-o', join(WORK, 'tree.cfs'), '--objects', objects]),
    )
    if (has(MKCOMPOSEFS)) {
      rmSync(objects, {recursive: true, force: true})
      mkc.push(run(MKCOMPOSEFS, [`--digest-store=${objects}`, TREE, join(WORK, 'tree-upstream.cfs')]))
    }
    if (has('mkfs.erofs')) {
      rmSync(join(WORK, 'full.erofs'), {force: true})
      mkfs.push(run('mkfs.erofs', [join(WORK, 'full.erofs'), TREE]))
    }
  }
  rmSync(objects, {recursive: true, force: true})
  const rows: Row[] = [
    {
      what: `hash every byte on all cores (DigestPool, ${big.length} files, ${(bytes / 1e9).toFixed(2)} GB)`,
      ms: median(hashRuns),
    },
    {what: '`cfsboot build` (image only)', ms: median(build)},
    {what: '`cfsboot build --objects` (image + copy into a fresh objects dir)', ms: median(buildObjects)},
  ]
  if (mkc.length)
    rows.push({what: 'upstream `mkcomposefs --digest-store` (fresh objects dir)', ms: median(mkc)})
  if (mkfs.length) rows.push({what: '`mkfs.erofs` (full data image, for scale)', ms: median(mkfs)})
  const entries = spawnSync('sh', ['-c', `find "${TREE}" | wc -l`])
    .stdout.toString()
    .trim()
  return table(`Build of the large Debian tree (${entries} entries)`, rows, rows[0]!.ms)
}

function dumpBench(): string {
  mkdirSync(WORK, {recursive: true})
  const dump = join(WORK, `dump-${ENTRIES}.txt`)
  if (!existsSync(dump)) writeFileSync(dump, makeDump(ENTRIES))
  const ours: number[] = []
  const upstream: number[] = []
  for (let i = 0; i < RUNS; i++) {
    ours.push(run('node', [RUN_JS, 'build', '--from-dump', dump, '-o', join(WORK, 'dump.cfs')]))
    if (has(MKCOMPOSEFS))
      upstream.push(run(MKCOMPOSEFS, ['--from-file', dump, join(WORK, 'dump-upstream.cfs')]))
  }
  const rows: Row[] = [{what: '`cfsboot build --from-dump`', ms: median(ours)}]
  if (upstream.length) {
    rows.push({what: 'upstream `mkcomposefs --from-file`', ms: median(upstream)})
    const same = spawnSync('cmp', [join(WORK, 'dump.cfs'), join(WORK, 'dump-upstream.cfs')]).status === 0
    rows[1]!.note = same ? '(identical image bytes)' : '(IMAGES DIFFER)'
  }
  const size = statSync(join(WORK, 'dump.cfs')).size
  return table(`Build from a ${ENTRIES}-entry dump (image ${(size / 1e6).toFixed(1)} MB)`, rows, rows[0]!.ms)
}

async function main(): Promise<void> {
  const parts = [dumpBench(), await treeBench()]
  console.log(parts.join('\n\n'))
}

await main()
