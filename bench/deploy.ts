// Benchmark of the deployment layer at scale: a store of 100,000 small objects, then
//   1. deploy an image that references all of them (every object already present),
//   2. deploy an update that shares 95 % and brings 5 % new objects (from --objects),
//   3. status, fsck (every object re-hashed), and gc after dropping the first deployment.
// Each step runs the real CLI (bin/cfsboot) and is timed from spawn to exit.
//
//   node dist/bench/deploy.js [--quick] [--objects N] [--dir DIR]
//
// --quick uses 10,000 objects. DIR (default: the temp dir) must not be tmpfs if you want disk
// numbers. Prints a markdown table.
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {initSysroot} from '../src/deploy/deploy.js'
import {sysrootPaths} from '../src/deploy/paths.js'
import {writeImage} from '../src/format/erofs/writer.js'
import {FsNode, objectPath, S_IFDIR, S_IFREG} from '../src/tree/node.js'
import {fsverityDigest} from '../src/verity/merkle.js'

import {CFSBOOT} from './lib.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const FILES_PER_DIR = 1000
const KVER = '6.12.0-bench'

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

const quick = process.argv.includes('--quick')
const COUNT = Number(arg('--objects') ?? (quick ? 10_000 : 100_000))
const NEW_SHARE = 0.05

/** Content of object `i` of generation `gen`: 100–2,000 bytes, unique. */
function content(gen: string, i: number): Buffer {
  const unit = Buffer.from(`${gen}-${i};`)
  const size = 100 + ((i * 7919) % 1900)
  return Buffer.concat(Array.from({length: Math.ceil(size / unit.length)}, () => unit)).subarray(0, size)
}

function dir(root: FsNode, path: string): FsNode {
  let d = root
  for (const part of path.split('/').filter(Boolean)) {
    let next = d.children!.get(part)
    if (!next) {
      next = new FsNode(S_IFDIR | 0o755)
      d.addChild(part, next)
    }
    d = next
  }
  return d
}

function file(
  parent: FsNode,
  name: string,
  data: Buffer,
  objectsDir: string | null,
  written: Set<string>,
): void {
  const f = new FsNode(S_IFREG | 0o644)
  f.size = data.length
  if (data.length <= 64) {
    f.content = data
  } else {
    const digest = fsverityDigest(data)
    f.digest = digest
    f.payload = objectPath(digest)
    if (objectsDir && !written.has(f.payload)) {
      const p = join(objectsDir, f.payload)
      mkdirSync(dirname(p), {recursive: true})
      writeFileSync(p, data)
      written.add(f.payload)
    }
  }
  parent.addChild(name, f)
}

/**
 * An image of COUNT files: file i is generation `gen`'s object when i falls in `newFrom…`, else
 * the base generation's. Objects are written to `baseDir` (base) or `newDir` (new ones).
 */
function makeImage(version: string, newFrom: number, baseDir: string | null, newDir: string | null): Buffer {
  const root = new FsNode(S_IFDIR | 0o755)
  const written = new Set<string>()
  const modules = dir(root, `/usr/lib/modules/${KVER}`)
  file(modules, 'vmlinuz', Buffer.from('bench kernel '.repeat(100)), baseDir, written)
  file(modules, 'initramfs.img', Buffer.from('bench initramfs '.repeat(100)), baseDir, written)
  const rel = `NAME=bench\nVERSION_ID=${version}\nPRETTY_NAME="cfsboot bench ${version}"\n`
  file(dir(root, '/usr/lib'), 'os-release', Buffer.from(rel), null, written)
  dir(root, '/etc')
  for (let i = 0; i < COUNT; i++) {
    const isNew = i >= newFrom
    const d = dir(root, `/usr/share/bench/d${Math.floor(i / FILES_PER_DIR)}`)
    file(d, `f${i}`, content(isNew ? `gen${version}` : 'base', i), isNew ? newDir : baseDir, written)
  }
  return writeImage(root).image
}

interface Step {
  what: string
  ms: number
  note: string
}

function cfsboot(sysroot: string, config: string, args: string[]): {ms: number; stdout: string} {
  const t0 = performance.now()
  const r = spawnSync(CFSBOOT, [...args, '--sysroot', sysroot, '--config', config], {
    cwd: REPO,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: {
      ...process.env,
      CFSBOOT_RUN_DIR: join(sysroot, 'no-run'),
      CFSBOOT_CMDLINE: join(sysroot, 'no-cmdline'),
    },
  })
  const ms = performance.now() - t0
  if (r.status !== 0) {
    throw new Error(`cfsboot ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  }
  return {ms, stdout: r.stdout}
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(arg('--dir') ?? tmpdir(), 'cfsboot-bench-deploy-'))
  try {
    const sysroot = join(base, 'sysroot')
    const config = join(base, 'cfsboot.conf')
    writeFileSync(config, '[gc]\nkeep-rollback = 1\n')
    const paths = sysrootPaths(sysroot)
    await initSysroot(paths)
    const newFrom = Math.floor(COUNT * (1 - NEW_SHARE))

    const t0 = performance.now()
    // The store is filled directly: every object of v1 is already present.
    const v1 = makeImage('1', COUNT, paths.objects, null)
    const newObjects = join(base, 'new-objects')
    const v2 = makeImage('2', newFrom, null, newObjects)
    const img1 = join(base, 'v1.cfs')
    const img2 = join(base, 'v2.cfs')
    writeFileSync(img1, v1)
    writeFileSync(img2, v2)
    const setupMs = performance.now() - t0

    const steps: Step[] = []
    const json = <T>(s: string): T => JSON.parse(s) as T
    type D = {objects: {imported: number; present: number; bytesImported: number}}

    let r = cfsboot(sysroot, config, ['deploy', img1, '--json'])
    let d = json<D>(r.stdout)
    steps.push({
      what: `deploy v1 (${COUNT.toLocaleString('en')} objects, all present)`,
      ms: r.ms,
      note: `${d.objects.imported} imported, ${d.objects.present} present; image ${v1.length} bytes`,
    })

    r = cfsboot(sysroot, config, ['deploy', img2, '--objects', newObjects, '--json'])
    d = json<D>(r.stdout)
    steps.push({
      what: `deploy v2 (+${(COUNT - newFrom).toLocaleString('en')} new objects, 5 %)`,
      ms: r.ms,
      note: `${d.objects.imported} imported (${d.objects.bytesImported} bytes, hardlinked: same filesystem), ${d.objects.present} present`,
    })

    r = cfsboot(sysroot, config, ['status', '--json'])
    steps.push({what: 'status', ms: r.ms, note: ''})

    r = cfsboot(sysroot, config, ['fsck', '--json'])
    const f = json<{ok: boolean; objects: {checked: number}}>(r.stdout)
    steps.push({what: 'fsck', ms: r.ms, note: `${f.objects.checked} objects re-hashed, ok=${f.ok}`})

    r = cfsboot(sysroot, config, ['undeploy', '1'])
    steps.push({what: 'undeploy v1', ms: r.ms, note: ''})
    r = cfsboot(sysroot, config, ['gc', '--json'])
    const g = json<{objects: number; bytes: number}>(r.stdout)
    steps.push({
      what: 'gc after dropping v1',
      ms: r.ms,
      note: `${g.objects} objects removed, ${g.bytes} bytes freed`,
    })

    console.log(`\n### cfsboot deploy benchmark: ${COUNT.toLocaleString('en')} objects\n`)
    console.log(`Setup (objects and 2 images made in-process): ${(setupMs / 1000).toFixed(1)} s\n`)
    console.log('| step | wall time | notes |')
    console.log('|---|---:|---|')
    for (const s of steps) console.log(`| ${s.what} | ${(s.ms / 1000).toFixed(2)} s | ${s.note} |`)
    console.log('\nWall time from spawn to exit of `bin/cfsboot …` (includes ~0.3 s of CLI start-up).')
  } finally {
    rmSync(base, {recursive: true, force: true})
  }
}

await main()
