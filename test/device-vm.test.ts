// A real device: Debian bookworm with systemd as init (the cached debootstrap corpus
// debian-systemd), made bootable with `cfsboot prepare --fix`, built into v1 and v2, installed
// with `install to-disk --via-loopback` from this host (which has no fs-verity: the install
// pre-seals the store) and booted through OVMF + systemd-boot. Then the headline use, INSIDE
// the VM, with no flags: `cfsboot deploy` v2, reboot into it, `cfsboot rollback`, reboot into
// v1, `cfsboot undeploy` + `cfsboot gc`. The host only places the update (v2's image and the
// objects v1 lacks) and a script on the installed disk's /var; a oneshot unit in the image
// runs that script once the boot has settled, and it reports on the serial console.
//
//   boot 0  same disk, entry switched to cfsboot.verity=maybe: the time a verity boot is held to
//   boot 1  v1, first boot, verity=require: multi-user.target, no failed unit, health good;
//           /etc changed; `cfsboot deploy v2.cfs --objects …`; `cfsboot status`: v2 staged
//   boot 2  v2, the /etc change carried; `cfsboot rollback`
//   boot 3  v1; `cfsboot undeploy V2` + `cfsboot gc` free v2's objects
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import {cpus, loadavg} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {readFatToDir, writeDirToFat} from '../src/system/fat.js'
import {TestDisk, withRoot} from './helpers/vm-disk.js'
import {DEVICE_CORPUS, makeDeviceTree, setVersion, VMTEST_DIR, VMTEST_SCRIPT} from './helpers/device-tree.js'
import {vmTestCli} from './helpers/vm-rootfs.js'
import {bootVm, cachedKernel, testLines, VmResult, vmSkipReason} from './helpers/vm.js'

/**
 * One boot of this distribution took ~50 s of VM time unloaded and 2.5-8 min on this 2-core
 * machine at a load average of 15 (a boot that deploys runs node under TCG): a limit for hangs.
 */
const BOOT_TIMEOUT_MS = 15 * 60_000
const T = VMTEST_DIR

function skipReason(): string | false {
  const vm = vmSkipReason()
  if (vm) return vm
  if (!existsSync(join(DEVICE_CORPUS, 'usr', 'lib', 'systemd', 'systemd')))
    return `the systemd Debian tree ${DEVICE_CORPUS} is missing (run test/helpers/corpus.sh debian-systemd)`
  return false
}

interface InstallJson {
  digest: string
  verity: {state: string}
  partitions: {name: string; offset: number; size: number}[]
}

function objectSet(dir: string): Set<string> {
  const out = new Set<string>()
  for (const xx of readdirSync(dir).filter((n) => /^[0-9a-f]{2}$/.test(n)))
    for (const f of readdirSync(join(dir, xx))) if (!f.startsWith('.')) out.add(`${xx}/${f}`)
  return out
}

test(
  'VM: a real Debian device deploys, rolls back and collects garbage by itself',
  {skip: skipReason(), timeout: 90 * 60_000},
  async (t) => {
    const kernel = cachedKernel()!
    const work = mkdtempSync(join('/var/tmp', 'cfsboot-device-vm-'))
    const consoles = join(work, 'console')
    mkdirSync(consoles)
    const env = {CFSBOOT_RUN_DIR: join(work, 'run'), CFSBOOT_CMDLINE: join(work, 'cmdline')}
    writeFileSync(env.CFSBOOT_CMDLINE, '')
    const report: string[] = []
    t.after(() => {
      for (const line of report) t.diagnostic(line)
      if (!process.env.CFSBOOT_KEEP_VM_WORK) rmSync(work, {recursive: true, force: true})
    })
    const cli = (args: string[]): string => vmTestCli(args, env)
    const step = (what: string, t0: number): void => {
      report.push(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
    }

    // --- the tree: the corpus, the test kernel, cfsboot's parts (prepare --fix), the test unit ---
    let t0 = Date.now()
    const tree = join(work, 'tree')
    const conf = makeDeviceTree(tree, kernel, env)
    step('tree + prepare --fix', t0)

    // --- images ----------------------------------------------------------------------------------
    t0 = Date.now()
    const build = (v: string): {image: string; objects: string; digest: string} => {
      const image = join(work, `v${v}.cfs`)
      const objects = join(work, `objects-v${v}`)
      const digest = cli(['build', tree, '-o', image, '--objects', objects]).trim().split('\n').at(-1)!
      assert.match(digest, /^[0-9a-f]{64}$/)
      return {image, objects, digest}
    }
    const v1 = build('1')
    setVersion(tree, '2')
    const v2 = build('2')
    const v1Objects = objectSet(v1.objects)
    const v2Only = [...objectSet(v2.objects)].filter((o) => !v1Objects.has(o))
    assert.ok(v2Only.length >= 1, 'v2 has objects of its own')
    report.push(`v1: ${v1Objects.size} objects; v2 brings ${v2Only.length} new`)
    step('build v1 + v2', t0)

    // --- install (this host has no fs-verity: the install pre-seals) ------------------------------
    t0 = Date.now()
    const diskPath = join(work, 'disk.img')
    const inst = JSON.parse(
      cli([
        'install',
        'to-disk',
        '--via-loopback',
        diskPath,
        '--size',
        '2G',
        '--image',
        v1.image,
        '--objects',
        v1.objects,
        '--config',
        conf,
        '--yes',
        '--json',
      ]),
    ) as InstallJson
    assert.equal(inst.digest, v1.digest)
    report.push(`install: verity ${inst.verity.state}`)
    const part = (name: string): {offset: number; size: number} => {
      const p = inst.partitions.find((x) => x.name === name)
      assert.ok(p, name)
      return {offset: p.offset, size: p.size}
    }
    const disk: TestDisk = {path: diskPath, esp: part('cfsboot-esp'), root: part('cfsboot-root')}
    // The update, placed on /var of the installed disk (how it arrives is not cfsboot's business).
    await withRoot(disk, async (root) => {
      const dir = join(root, T.slice(1))
      mkdirSync(join(dir, 'objects'), {recursive: true})
      copyFileSync(v2.image, join(dir, 'v2.cfs'))
      for (const o of v2Only) {
        mkdirSync(join(dir, 'objects', o.slice(0, 2)), {recursive: true})
        copyFileSync(join(v2.objects, o), join(dir, 'objects', o))
      }
      writeFileSync(join(dir, 'v2.digest'), v2.digest)
      writeFileSync(join(dir, 'run.sh'), VMTEST_SCRIPT)
    })
    // The same disk with its entry switched to verity=maybe: the reference time.
    const maybePath = join(work, 'disk-maybe.img')
    execFileSync('cp', ['--sparse=always', diskPath, maybePath])
    const espDir = join(work, 'esp-maybe')
    const fat = {path: maybePath, offset: disk.esp.offset}
    await readFatToDir(fat, espDir)
    const entries = join(espDir, 'loader', 'entries')
    for (const e of readdirSync(entries)) {
      const p = join(entries, e)
      writeFileSync(p, readFileSync(p, 'utf8').replace('cfsboot.verity=require', 'cfsboot.verity=maybe'))
    }
    await writeDirToFat(fat, espDir)
    step('install + placing the update', t0)

    // --- boots --------------------------------------------------------------------------------------
    const boots: Record<string, Map<string, string>> = {}
    async function boot(
      name: string,
      path: string,
      check: (l: Map<string, string>, vm: VmResult) => void,
    ): Promise<Map<string, string>> {
      const vm = await bootVm({
        disk: path,
        consoleFile: join(consoles, `${name}.log`),
        memoryMb: 2048,
        timeoutMs: BOOT_TIMEOUT_MS,
      })
      const l = testLines(vm.console)
      const mu = Number(l.get('multi-user-us') ?? NaN) / 1e6
      report.push(
        `boot ${name}: VM run ${vm.seconds.toFixed(1)} s, multi-user.target at ${mu.toFixed(1)} s of uptime, initramfs mount step ${l.get('mount-ms') ?? '-'} ms (verity=${l.get('record-verity') ?? '-'})`,
      )
      try {
        assert.equal(vm.timedOut, false, 'the VM finished before the timeout')
        assert.equal(l.get('failed-units'), '', 'no failed unit')
        assert.equal(l.get('root'), 'composefs:overlay')
        check(l, vm)
      } catch (err) {
        console.error(`----- console of boot ${name} -----\n${vm.console}\n----- end of console -----`)
        throw err
      }
      boots[name] = l
      return l
    }
    const out = (vm: VmResult): string =>
      vm.console
        .split(/\r?\n/)
        .filter((x) => x.includes('CFSBOOT-OUT '))
        .map((x) => x.slice(x.indexOf('CFSBOOT-OUT ') + 12))
        .join(' | ')

    await t.test('boot 0: the same image with verity=maybe (reference time)', async () => {
      await boot('0-maybe', maybePath, (l) => {
        assert.equal(l.get('record-verity'), 'maybe')
        assert.equal(l.get('done'), 'maybe')
      })
    })

    await t.test('boot 1: v1 first boot verified; deploy v2 on the device', async () => {
      await boot('1-v1', diskPath, (l, vm) => {
        assert.equal(l.get('digest'), v1.digest)
        assert.equal(l.get('version'), '1')
        assert.equal(l.get('record-verity'), 'require')
        assert.equal(l.get('overlay-verity'), 'require')
        // `starting` while this test unit's own job runs; `degraded` would mean a failed unit.
        assert.notEqual(l.get('state'), 'degraded')
        assert.equal(l.get('health'), 'good')
        assert.equal(l.get('deploy-exit'), '0', out(vm))
        assert.doesNotMatch(out(vm), /\.pwd\.lock/, 'a lock file is not an /etc conflict')
        assert.equal(l.get('next'), v2.digest, 'v2 is the next boot')
        assert.match(vm.console, /CFSBOOT-TEST next=[0-9a-f]{64} staged=true entries=2 count=2/)
        assert.equal(l.get('esp-mounts'), '0', 'the ESP was unmounted after the command')
        assert.equal(l.get('done'), '1')
      })
      const require = Number(boots['1-v1']!.get('multi-user-us')) / 1e6
      const maybe = Number(boots['0-maybe']!.get('multi-user-us')) / 1e6
      report.push(
        `first verified boot of a host install: multi-user.target at ${require.toFixed(1)} s vs ${maybe.toFixed(1)} s with maybe (${(require / maybe).toFixed(2)}x; the issue allows 2x)`,
      )
      // Reported, not asserted: speed is shown by measurements (this line, bench/boot.ts), never
      // by a timed assertion, which would fail on a loaded machine and prove nothing on a quiet one.
      report.push(`(load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores)`)
    })

    await t.test('boot 2: v2, the /etc change carried; rollback on the device', async () => {
      await boot('2-v2', diskPath, (l, vm) => {
        assert.equal(l.get('digest'), v2.digest)
        assert.equal(l.get('version'), '2')
        assert.equal(l.get('overlay-verity'), 'require')
        assert.equal(l.get('etc-note'), 'changed-under-v1')
        assert.equal(l.get('health'), 'good')
        assert.equal(l.get('rollback-exit'), '0', out(vm))
        assert.equal(l.get('next'), v1.digest)
        assert.equal(l.get('done'), '2')
      })
    })

    await t.test('boot 3: v1 again; undeploy v2 + gc free its objects', async () => {
      await boot('3-v1', diskPath, (l, vm) => {
        assert.equal(l.get('digest'), v1.digest)
        assert.equal(l.get('version'), '1')
        assert.equal(l.get('undeploy-exit'), '0', out(vm))
        assert.equal(l.get('gc-exit'), '0', out(vm))
        const before = Number(l.get('objects-before'))
        const after = Number(l.get('objects-after'))
        assert.equal(before - after, v2Only.length, `gc freed v2's ${v2Only.length} objects: ${out(vm)}`)
        assert.match(
          vm.console,
          /CFSBOOT-TEST objects-after=\d+ next=[0-9a-f]{64} staged=\w+ entries=1 count=1/,
        )
        assert.equal(l.get('done'), '3')
      })
      await withRoot(disk, async (root) => {
        const store = objectSet(join(root, 'composefs', 'objects'))
        for (const o of v2Only) assert.equal(store.has(o), false, `${o} is gone`)
        assert.equal(store.size, v1Objects.size)
      })
    })
  },
)
