// Crash injection: deploy, gc, rollback and undeploy killed with SIGKILL at random moments.
//
// Each run copies a prepared sysroot (cp -a), starts the real CLI on it, and kills the whole
// process group after a random delay, chosen one of three ways in turn: uniform over the
// command's measured duration from its start; uniform over the part after its start-up (when it
// holds the lock and writes), counted from its first write to the sysroot (seen through inotify,
// no tracing, so load on the machine does not shift the window); or 0–10 ms after that first
// write. So many kills land mid-operation, even in a rollback whose only write is one rename. After every run: `cfsboot fsck` exits 0, `status --json` follows the
// schema, the deployment the boot loader would boot is complete (image with the right digest,
// every object, kernel files), and so is the default from before the command.
// CFSBOOT_CRASH_RUNS sets the number of runs (default 208). The sysroots live on /dev/shm when it is
// a separate filesystem (cheap copies; kill -9 keeps the page cache either way), the images'
// objects on the temp dir, so deploy copies them instead of hardlinking.
import assert from 'node:assert/strict'
import {execFileSync, spawn} from 'node:child_process'
import {FSWatcher, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, watch} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, test} from 'node:test'

import {Status} from '../src/deploy/status.js'
import {makeImage, TestImage} from './helpers/images.js'
import {
  cli,
  cliJson,
  defaultDigest,
  describeSysroot,
  diffSnapshots,
  incomplete,
  makeSysroot,
  schemaErrors,
  snapshot,
  startCli,
  Sysroot,
} from './helpers/sysroot.js'

const RUNS = Number(process.env.CFSBOOT_CRASH_RUNS ?? 208)
const PARALLEL = 3

const imagesDir = mkdtempSync(join(tmpdir(), 'cfsboot-crash-images-'))
const work = (() => {
  try {
    if (statSync('/dev/shm').dev !== statSync(imagesDir).dev) return mkdtempSync('/dev/shm/cfsboot-crash-')
  } catch {
    // no /dev/shm
  }
  return mkdtempSync(join(tmpdir(), 'cfsboot-crash-'))
})()
after(() => {
  rmSync(work, {recursive: true, force: true})
  rmSync(imagesDir, {recursive: true, force: true})
})

const blob = (seed: string, size: number): Buffer => {
  const unit = Buffer.from(`${seed}|`)
  return Buffer.concat(Array.from({length: Math.ceil(size / unit.length)}, () => unit)).subarray(0, size)
}

/** An image with `n` objects of its own and `shared` ones common to every version. */
function version(v: string, n: number, dir: string): TestImage {
  const files: Record<string, Buffer> = {}
  for (let i = 0; i < 40; i++) files[`/usr/share/common/c${i}`] = blob(`common-${i}`, 3000 + i)
  for (let i = 0; i < n; i++) files[`/usr/share/v${v}/f${i}`] = blob(`v${v}-${i}`, 4096 + 13 * i)
  mkdirSync(dir, {recursive: true})
  return makeImage(dir, {version: v, files})
}

interface Scenario {
  name: string
  template: Sysroot
  args: string[]
  /** The default before the command. */
  before: string
  /** Defaults allowed afterwards. */
  allowed: string[]
  duration: number
  startup: number
}

async function run(s: Sysroot, args: string[]): Promise<void> {
  const r = await cli(s, args)
  assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
}

/** Median wall time of `n` runs of `args` on fresh copies of `template`. */
async function measure(template: Sysroot, args: string[], n: number): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < n; i++) {
    const s = copy(template, `measure-${Math.random().toString(36).slice(2)}`)
    const t0 = performance.now()
    const r = await startCli(s, args).done
    times.push(performance.now() - t0)
    assert.equal(r.code, 0, r.stderr)
    rmSync(s.dir, {recursive: true, force: true})
  }
  return times.sort((a, b) => a - b)[n >> 1]!
}

/** Time until the command has started up and tried the lock (the lock is held, it gives up). */
async function measureStartup(template: Sysroot, args: string[]): Promise<number> {
  const s = copy(template, `startup-${Math.random().toString(36).slice(2)}`)
  const holder = startHolder(s)
  await new Promise((r) => setTimeout(r, 200))
  const t0 = performance.now()
  const r = await startCli(s, [...args, '--lock-timeout', '0']).done
  const t = performance.now() - t0
  holder.kill()
  assert.notEqual(r.code, 0)
  rmSync(s.dir, {recursive: true, force: true})
  return t
}

function startHolder(s: Sysroot): {kill(): void} {
  const child = spawn('flock', ['--exclusive', s.paths.lock, 'sleep', '60'], {
    stdio: 'ignore',
    detached: true,
  })
  return {kill: () => process.kill(-child.pid!, 'SIGKILL')}
}

let copies = 0
function copy(template: Sysroot, name = `run-${copies++}`): Sysroot {
  const dir = join(work, name)
  execFileSync('cp', ['-a', template.dir, dir])
  return describeSysroot(dir)
}

test(`${RUNS} commands killed at random moments leave a bootable, consistent sysroot`, async () => {
  const imgDir = (n: string): string => join(imagesDir, n)
  const v1 = version('1', 150, imgDir('v1'))
  const v2 = version('2', 150, imgDir('v2'))
  const v3 = version('3', 500, imgDir('v3'))

  // Templates: v1 and v2 deployed (v2 default); and v1, v2, v3 deployed (v3 default).
  const two = await makeSysroot({parent: work})
  await run(two, ['deploy', v1.image, '--objects', v1.objects])
  await run(two, ['deploy', v2.image, '--objects', v2.objects])
  const three = copy(two, 'three')
  await run(three, ['deploy', v3.image, '--objects', v3.objects])

  const scenarios: Scenario[] = []
  const add = async (name: string, template: Sysroot, args: string[], allowed: string[]): Promise<void> => {
    const before = (await defaultDigest(template.paths))!
    const duration = await measure(template, args, 3)
    const startup = Math.min(0.9 * (await measureStartup(template, args)), duration * 0.9)
    scenarios.push({name, template, args, before, allowed, duration, startup})
  }
  await add('deploy', two, ['deploy', v3.image, '--objects', v3.objects], [v2.digest, v3.digest])
  await add('gc', three, ['gc'], [v3.digest]) // keeps v3 (default) and v2 (rollback), drops v1
  await add('rollback', three, ['rollback'], [v3.digest, v2.digest])
  await add('undeploy', three, ['undeploy', v1.digest.slice(0, 12)], [v3.digest])
  for (const sc of scenarios)
    console.log(`# ${sc.name}: ~${sc.duration.toFixed(0)} ms, start-up ~${sc.startup.toFixed(0)} ms`)

  const templateSnapshots = new Map(scenarios.map((sc) => [sc.name, snapshot(sc.template.dir)]))
  const counts = new Map<string, {finished: number; mid: number; early: number}>()
  for (const sc of scenarios) counts.set(sc.name, {finished: 0, mid: 0, early: 0})

  const one = async (i: number): Promise<void> => {
    const sc = scenarios[i % scenarios.length]!
    const s = copy(sc.template)
    const mode = Math.floor(i / scenarios.length) % 3
    const range = [sc.duration * 1.1, Math.max(5, sc.duration - sc.startup), 10][mode]!
    const delay = Math.random() * range
    let timer: NodeJS.Timeout | undefined
    const watchers: FSWatcher[] = []
    const stopWatching = (): void => watchers.splice(0).forEach((w) => w.close())
    const proc = startCli(s, sc.args)
    if (mode > 0) {
      // inotify on every directory the commands write, set up before the command can write.
      const p = s.paths
      const fanouts = readdirSync(p.objects).map((f) => join(p.objects, f))
      for (const dir of [p.composefs, p.images, p.deployments, p.entries, p.kernels, p.objects, ...fanouts]) {
        watchers.push(
          watch(dir, () => {
            stopWatching()
            timer ??= setTimeout(() => proc.kill(), delay)
          }),
        )
      }
    } else {
      timer = setTimeout(() => proc.kill(), delay)
    }
    const r = await proc.done
    clearTimeout(timer)
    stopWatching()
    const what = `${sc.name} run ${i} (kill ${delay.toFixed(0)} ms after ${mode ? 'its first write' : 'start'})`
    const c = counts.get(sc.name)!
    if (r.signal === null) {
      assert.equal(r.code, 0, `${what}: ${r.stderr}`)
      c.finished++
    } else if (diffSnapshots(templateSnapshots.get(sc.name)!, snapshot(s.dir)).length === 0) {
      c.early++
    } else {
      c.mid++
    }

    const [fsck, st] = await Promise.all([cli(s, ['fsck']), cliJson<Status>(s, ['status'])])
    assert.equal(fsck.code, 0, `${what}: fsck: ${fsck.stderr}${fsck.stdout}`)
    assert.equal(st.r.code, 0, `${what}: status: ${st.r.stderr}`)
    assert.equal(schemaErrors('status', st.json), '', what)
    const now = await defaultDigest(s.paths)
    assert.ok(now && sc.allowed.includes(now), `${what}: default is ${now}`)
    assert.deepEqual(await incomplete(s.paths, now), [], `${what}: the default is incomplete`)
    assert.deepEqual(await incomplete(s.paths, sc.before), [], `${what}: the previous default is incomplete`)
    assert.equal(st.json.deployments[0]!.digest, now, `${what}: status disagrees with the entries`)
    rmSync(s.dir, {recursive: true, force: true})
  }

  let next = 0
  await Promise.all(
    Array.from({length: PARALLEL}, async () => {
      for (let i = next++; i < RUNS; i = next++) await one(i)
    }),
  )

  let total = {finished: 0, mid: 0, early: 0}
  for (const [name, c] of counts) {
    console.log(
      `# ${name}: ${c.mid} killed mid-operation, ${c.early} killed before writing, ${c.finished} finished`,
    )
    total = {finished: total.finished + c.finished, mid: total.mid + c.mid, early: total.early + c.early}
  }
  console.log(
    `# ${RUNS} runs: ${total.mid} killed mid-operation, ${total.early} killed before writing, ${total.finished} finished`,
  )
  assert.ok(total.mid >= RUNS / 5, `only ${total.mid} of ${RUNS} kills landed mid-operation`)
})
