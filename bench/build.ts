// Image build and inspection, side by side with upstream composefs's C tools in one run:
//   - the large Debian tree (test/helpers/corpus.sh debian-large): `cfsboot build` against
//     `mkcomposefs`, image only and into a fresh objects store (`--digest-store`);
//   - the composefs dump of that tree: `build --from-dump` against `mkcomposefs --from-file`,
//     and `image dump` against `composefs-info dump`;
//   - generated dumps of 10k, 100k and 1M entries: time and memory per entry (linear?).
// Every figure is a whole process (as a user runs it), median and spread (min–max) of N runs
// that alternate with the reference tool, peak RSS from /usr/bin/time. Warm page cache.
// Upstream tools: MKCOMPOSEFS=… and COMPOSEFS_INFO=… (default: a build under /tmp); rows
// without them say so. Prints markdown (also saved as $CFSBOOT_BENCH_CACHE/build.md).
//
//   node dist/bench/build.js [--tree DIR] [--runs N] [--quick] [--no-store]
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, openSync, closeSync, rmSync, writeSync, writeFileSync} from 'node:fs'
import {join} from 'node:path'

import {
  BENCH_CACHE,
  CFSBOOT,
  formatSummary,
  measureProcess,
  ProcessRun,
  Summary,
  summarize,
  table,
} from './lib.js'

const WORK = join(BENCH_CACHE, 'build')

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1]! : fallback
}
const QUICK = process.argv.includes('--quick')
const TREE = arg('--tree', '/var/cache/cfsboot-test/debian-large')
const RUNS = Number(arg('--runs', QUICK ? '3' : '5'))
const STORE_RUNS = QUICK || process.argv.includes('--no-store') ? 0 : Math.min(RUNS, 3)
const CURVE = QUICK ? [10_000, 100_000] : [10_000, 100_000, 1_000_000]

function firstTool(envName: string, candidates: string[]): string | null {
  const fromEnv = process.env[envName]
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : null
  return candidates.find((c) => existsSync(c)) ?? null
}
const MKCOMPOSEFS = firstTool('MKCOMPOSEFS', [
  '/tmp/composefs-src/build/tools/mkcomposefs',
  '/tmp/composefs/build/tools/mkcomposefs',
])
const COMPOSEFS_INFO = firstTool('COMPOSEFS_INFO', [
  '/tmp/composefs-src/build/tools/composefs-info',
  '/tmp/composefs/build/tools/composefs-info',
])

const cfsboot = (...args: string[]): [string, string[]] => [CFSBOOT, args]

interface Pair {
  work: string
  ours: Summary
  theirs: Summary | null
  theirsName: string
  note?: string
}

/**
 * Runs ours and theirs alternately `runs` times; `before` runs (untimed) before each run.
 * `theirs` null: the reference tool is missing.
 */
function pair(
  runs: number,
  ours: [string, string[]],
  theirs: [string, string[]] | null,
  opts: {before?: () => void; stdout?: [string, string]} = {},
): [Summary, Summary | null] {
  const a: ProcessRun[] = []
  const b: ProcessRun[] = []
  for (let i = 0; i < runs; i++) {
    opts.before?.()
    a.push(measureProcess(ours[0], ours[1], opts.stdout?.[0]))
    if (theirs) {
      opts.before?.()
      b.push(measureProcess(theirs[0], theirs[1], opts.stdout?.[1]))
    }
  }
  return [summarize(a), theirs ? summarize(b) : null]
}

function same(x: string, y: string): boolean {
  return spawnSync('cmp', ['-s', x, y]).status === 0
}

function pairTable(title: string, rows: Pair[]): string {
  const head = ['work', 'cfsboot', 'upstream C', 'time ratio', 'cpu ratio', 'memory ratio']
  const body = rows.map((r) => {
    const t = r.theirs
    return [
      r.work + (r.note ? ` ${r.note}` : ''),
      formatSummary(r.ours),
      t ? `\`${r.theirsName}\` ${formatSummary(t)}` : `(\`${r.theirsName}\` not found)`,
      t ? `${(r.ours.median / t.median).toFixed(2)}×` : '–',
      t && t.cpuMs ? `${(r.ours.cpuMs / t.cpuMs).toFixed(2)}×` : '–',
      t && t.rssKiB ? `${(r.ours.rssKiB / t.rssKiB).toFixed(2)}×` : '–',
    ]
  })
  return `### ${title}\n\n${table(head, body)}`
}

/** A composefs dump of `n` entries: directories of 1000 files with payloads, digests, some xattrs. */
function makeDump(path: string, n: number): void {
  if (existsSync(path)) return
  const fd = openSync(`${path}.tmp`, 'w')
  let lines = ['/ 4096 40755 2 0 0 0 1700000000.0 - - - security.selinux=system_u:object_r:root_t:s0']
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
    writeSync(fd, lines.join('\n') + '\n')
    lines = []
  }
  closeSync(fd)
  spawnSync('mv', [`${path}.tmp`, path])
}

function treeRows(): Pair[] | string {
  if (!existsSync(TREE))
    return `(skipped: ${TREE} is missing; make it with test/helpers/corpus.sh debian-large)`
  spawnSync('sh', ['-c', `find "${TREE}" -type f -print0 | xargs -0 cat > /dev/null`])
  const ours = join(WORK, 'tree.cfs')
  const theirs = join(WORK, 'tree-upstream.cfs')
  const rows: Pair[] = []
  const [o, t] = pair(
    RUNS,
    cfsboot('build', TREE, '-o', ours),
    MKCOMPOSEFS ? [MKCOMPOSEFS, [TREE, theirs]] : null,
  )
  rows.push({
    work: 'build, image only',
    ours: o,
    theirs: t,
    theirsName: 'mkcomposefs',
    // Upstream's directory walk writes each name of a hardlinked file as an inode of its own
    // (nlink 1); cfsboot keeps the link, as the tree has it. Trees with hardlinks differ there.
    ...(t && {
      note: same(ours, theirs) ? '(identical images)' : '(images differ)',
    }),
  })
  if (STORE_RUNS > 0) {
    const objects = join(WORK, 'objects')
    const clean = (): void => {
      rmSync(objects, {recursive: true, force: true})
      spawnSync('sync')
    }
    const [so, st] = pair(
      STORE_RUNS,
      cfsboot('build', TREE, '-o', ours, '--objects', objects),
      MKCOMPOSEFS ? [MKCOMPOSEFS, [`--digest-store=${objects}`, TREE, theirs]] : null,
      {before: clean},
    )
    clean()
    rows.push({
      work: 'build into a fresh objects store',
      ours: so,
      theirs: st,
      theirsName: 'mkcomposefs --digest-store',
    })
  }
  return rows
}

function dumpRows(image: string, label: string): Pair[] {
  const dump = join(WORK, `${label}.dump`)
  if (COMPOSEFS_INFO) measureProcess(COMPOSEFS_INFO, ['dump', image], dump)
  else measureProcess(...cfsboot('image', 'dump', image), dump)
  const ours = join(WORK, `${label}-from-dump.cfs`)
  const theirs = join(WORK, `${label}-from-dump-upstream.cfs`)
  const [bo, bt] = pair(
    RUNS,
    cfsboot('build', '--from-dump', dump, '-o', ours),
    MKCOMPOSEFS ? [MKCOMPOSEFS, ['--from-file', dump, theirs]] : null,
  )
  const outO = join(WORK, `${label}-ours.dump`)
  const outT = join(WORK, `${label}-upstream.dump`)
  const [dO, dT] = pair(
    RUNS,
    cfsboot('image', 'dump', ours),
    COMPOSEFS_INFO ? [COMPOSEFS_INFO, ['dump', ours]] : null,
    {
      stdout: [outO, outT],
    },
  )
  return [
    {
      work: 'build from its dump',
      ours: bo,
      theirs: bt,
      theirsName: 'mkcomposefs --from-file',
      ...(bt && {note: same(ours, theirs) ? '(identical images)' : '(IMAGES DIFFER)'}),
    },
    {
      work: '`image dump` of that image',
      ours: dO,
      theirs: dT,
      theirsName: 'composefs-info dump',
      ...(dT && {note: same(outO, outT) ? '(identical text)' : '(DUMPS DIFFER)'}),
    },
  ]
}

function curve(): string {
  const head = ['entries', 'cfsboot build --from-dump', 'per entry', 'mkcomposefs --from-file', 'ratio']
  const rows: string[][] = []
  for (const n of CURVE) {
    const dump = join(BENCH_CACHE, `dump-${n}.txt`)
    makeDump(dump, n)
    const runs = n >= 1_000_000 ? Math.min(RUNS, 3) : RUNS
    const [o, t] = pair(
      runs,
      cfsboot('build', '--from-dump', dump, '-o', join(WORK, 'curve.cfs')),
      MKCOMPOSEFS ? [MKCOMPOSEFS, ['--from-file', dump, join(WORK, 'curve-upstream.cfs')]] : null,
    )
    rows.push([
      n.toLocaleString('en'),
      formatSummary(o),
      `${((o.median * 1000) / n).toFixed(1)} µs, ${((o.rssKiB * 1024) / n).toFixed(0)} B`,
      t ? formatSummary(t) : '(not found)',
      t ? `${(o.median / t.median).toFixed(2)}×` : '–',
    ])
  }
  return `### Build from generated dumps: the curve\n\n${table(head, rows)}`
}

function main(): void {
  rmSync(WORK, {recursive: true, force: true})
  mkdirSync(WORK, {recursive: true})
  const parts: string[] = []
  const missing = [!MKCOMPOSEFS && 'MKCOMPOSEFS', !COMPOSEFS_INFO && 'COMPOSEFS_INFO'].filter(Boolean)
  if (missing.length)
    parts.push(`(upstream tools not found: set ${missing.join(', ')}; their columns are empty)`)
  const tree = treeRows()
  if (typeof tree === 'string') parts.push(tree)
  else {
    const image = join(WORK, 'tree.cfs')
    parts.push(pairTable(`Large Debian tree (${TREE})`, [...tree, ...dumpRows(image, 'tree')]))
  }
  parts.push(curve())
  const md = parts.join('\n\n')
  console.log(md)
  writeFileSync(join(BENCH_CACHE, 'build.md'), md + '\n')
  rmSync(WORK, {recursive: true, force: true})
}

main()
