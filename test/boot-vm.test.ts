// The whole boot path, for real: a small bootable rootfs built into two images (v1, v2) with
// `cfsboot build`, an initramfs from `cfsboot initramfs`, a GPT disk with an ESP and an ext4
// root, and QEMU booting it through OVMF → systemd-boot → the entry cfsboot made the default
// → the dracut module → the rootfs's /sbin/init, which prints `CFSBOOT-TEST key=value` lines
// on the serial console and powers off. Between boots the host changes the disk the way an
// administrator's cfsboot would (deploy, rollback, undeploy, gc) and, last, tampers with it.
//
// Three disks, because of one fact of this host: its kernel has no fs-verity (CONFIG_FS_VERITY),
// and such a kernel refuses to open ANY file that has fs-verity enabled, even for reading
// (ENOTSUP). On a sealed store the host can no longer run deploy (it reads the shared kernel
// object) or gc (it reads the kept images); on a real system these run on the booted machine,
// whose kernel has fs-verity.
//
//   disk "verified" (`install to-disk --via-loopback`, [boot] verity = require), ~13-40 s a boot:
//     1. v1, first boot: install pre-sealed the store on the host (no sealing in the initramfs),
//        mounted with verity=require; `fsverity measure` in the VM prints each object's name;
//        /etc writable, /var shared.
//     4a. an object replaced on disk: reading its file in the VM fails with EIO.
//     4b. the image replaced on disk: the initramfs refuses to boot (also when the attacker
//        adds the seal-pending marker: the digest check refuses it).
//   disk "fallback" (`install to-filesystem` on a mounted root, verity = require, plus extra
//     objects): the host leaves composefs/seal-pending; the first boot seals in the initramfs
//     (the time it took for N objects is printed) and mounts with verity=require.
//   disk "lifecycle" (`install to-filesystem`, verity = maybe: nothing sealed, the image digest
//     is checked in user space, so the host can change the store between boots):
//     2. v2 after a host-side `deploy`: the /etc change v1's init made is carried; /var shared.
//     3. v1 after `rollback`; `gc` keeps v2's objects while v2 is the rollback, `undeploy` v2 +
//        `gc` frees the v2-only objects and nothing else.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {randomBytes} from 'node:crypto'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'
import {test} from 'node:test'

import {readFatToDir, writeDirToFat} from '../src/system/fat.js'
import {digestHex, fsverityDigest} from '../src/verity/merkle.js'
import {installByHand, installOnMountedRoot, TestDisk, withRoot} from './helpers/vm-disk.js'
import {makeBusyboxRootfs, vmTestCli} from './helpers/vm-rootfs.js'
import {bootVm, cachedKernel, TestKernel, testLines, VmResult, vmSkipReason} from './helpers/vm.js'

const skip = vmSkipReason()
/** Kernel arguments every entry gets (cfsboot.conf [boot] kernel-args). rd.shell=0: a failed
 *  boot ends (panic=-1 and QEMU's -no-reboot) instead of waiting at an emergency shell. */
const KERNEL_ARGS = 'console=ttyS0 panic=-1 rd.shell=0 loglevel=4'

const INIT = `#!/bin/sh
# cfsboot VM test init: report what the initramfs set up, then power off.
export PATH=/usr/bin:/bin
t() { echo "CFSBOOT-TEST $*"; }
[ -r /proc/uptime ] || mount -t proc proc /proc
read -r up _ < /proc/uptime
grep -q ' /sys ' /proc/mounts || mount -t sysfs sysfs /sys
v=$(cat /usr/share/cfsboot-test/version)
rec=/run/cfsboot/booted.json
t "version=$v digest=$(sed -n 's/.*"digest": *"\\([0-9a-f]*\\)".*/\\1/p' $rec)"
t "uptime-at-init=$up mount-ms=$(sed -n 's/.*"mountMs": *\\([0-9]*\\).*/\\1/p' $rec)"
t "record-verity=$(sed -n 's/.*"verity": *"\\([a-z]*\\)".*/\\1/p' $rec) image-verity=$(sed -n 's/.*"imageVerity": *\\([a-z]*\\).*/\\1/p' $rec)"
t "root=$(awk '$2=="/"{print $1":"$3}' /proc/mounts | tail -n 1)"
case ",$(awk '$2=="/"{print $4}' /proc/mounts | tail -n 1)," in
  *,verity=require,*) t "overlay-verity=require" ;;
  *) t "overlay-verity=none" ;;
esac
if echo "$v" > /etc/cfsboot-test-last 2> /dev/null && [ "$(cat /etc/cfsboot-test-last)" = "$v" ]; then
  t "etc=writable"
else
  t "etc=readonly"
fi
[ -f /etc/cfsboot-note ] || echo "written-under-v$v" > /etc/cfsboot-note
t "etc-note=$(cat /etc/cfsboot-note)"
echo "boot of v$v" >> /var/cfsboot-test.log
if [ /var/cfsboot-test.log -ef /sysroot/var/cfsboot-test.log ]; then t "var=shared"; else t "var=separate"; fi
t "var-boots=$(grep -c . /var/cfsboot-test.log)"
# The kernel's measurement of a sealed store: each object's digest must be its name.
t "objects=$(find /sysroot/composefs/objects -type f | wc -l)"
if grep -q '"imageVerity": true' $rec; then
  /usr/bin/fsverity measure /sysroot/composefs/objects/??/* 2> /dev/null | awk '{h = substr($1, 8); n = $2; sub(".*/objects/", "", n); sub("/", "", n); if (h == n) ok++; else bad++} END {print "CFSBOOT-TEST measure-ok=" ok + 0 " measure-bad=" bad + 0}'
  t "image-measure=$(/usr/bin/fsverity measure /sysroot/composefs/images/* 2> /dev/null | cut -d ' ' -f 1)"
fi
if out=$(cat /usr/share/cfsboot-test/data.txt 2>&1); then
  t "data=$(echo "$out" | head -n 1)"
else
  t "data=error"
  echo "CFSBOOT-TEST-ERROR $out"
fi
t "done"
sync
poweroff -f
`

/** The parts of `install to-disk --json` the test uses (docs/schemas/install.json). */
interface InstallJson {
  digest: string
  verity: {state: string}
  partitions: {name: string; offset: number; size: number}[]
}

interface Built {
  image: string
  objects: string
  digest: string
}

const cli = vmTestCli

/** Copies a dynamically linked host tool and the libraries ldd names into the rootfs `dir`. */
function copyTool(dir: string, tool: string): void {
  const libs = [...execFileSync('ldd', [tool], {encoding: 'utf8'}).matchAll(/(\/\S+\.so[.\d]*)/g)].map(
    (m) => m[1]!,
  )
  for (const f of [tool, ...libs]) {
    // /bin is usr/bin in the rootfs; the libraries keep their paths under usr/.
    const to = f.startsWith('/lib64/') ? join(dir, f) : join(dir, 'usr', f.replace(/^\/usr\//, '/'))
    mkdirSync(dirname(to), {recursive: true})
    copyFileSync(f, to)
  }
  if (!existsSync(join(dir, 'lib'))) symlinkSync('usr/lib', join(dir, 'lib'))
}

/** The test rootfs: busybox, the init above, the kernel and initramfs, fsverity, and a data file. */
function makeRootfs(dir: string, version: string, kernel: TestKernel, initramfs: string): void {
  makeBusyboxRootfs({dir, version, init: INIT, kernel, initramfs})
  copyTool(dir, '/usr/bin/fsverity')
  writeFileSync(join(dir, 'etc', 'hostname'), 'cfsboot-vm\n')
  // Over 64 bytes, so it is an object (different in each version: a v2-only object).
  writeFileSync(
    join(dir, 'usr', 'share', 'cfsboot-test', 'data.txt'),
    `data-of-v${version}\n` + `payload of version ${version}\n`.repeat(20),
  )
}

function objectFiles(dir: string): Set<string> {
  const out = new Set<string>()
  if (!existsSync(dir)) return out
  for (const xx of readdirSync(dir)) {
    if (!/^[0-9a-f]{2}$/.test(xx)) continue
    for (const f of readdirSync(join(dir, xx))) if (!f.startsWith('.')) out.add(`${xx}/${f}`)
  }
  return out
}

/** fs-verity digest of a file as an object path (xx/yyyy…). */
function objectPathOf(file: string): string {
  const hex = /sha256:([0-9a-f]{64})/.exec(
    execFileSync('fsverity', ['digest', file], {encoding: 'utf8'}),
  )![1]!
  return `${hex.slice(0, 2)}/${hex.slice(2)}`
}

/**
 * Replaces `file` with a copy of `original` (the same bytes, from the build) that has 8 bytes
 * changed at `offset`. A sealed file cannot be opened at all by this host's kernel (ENOTSUP),
 * so the attacker writes a new file under the same name: it has no fs-verity.
 */
function tamper(file: string, original: string, offset: number): void {
  const data = readFileSync(original)
  data.write('TAMPERED', offset, 'latin1')
  const tmp = `${file}.tampered`
  writeFileSync(tmp, data)
  renameSync(tmp, file)
}

test(
  'VM: UEFI boot of cfsboot deployments (build, install, seal, deploy, rollback, gc, tampering)',
  {skip, timeout: 30 * 60_000},
  async (t) => {
    const kernel = cachedKernel()!
    const work = mkdtempSync(join(tmpdir(), 'cfsboot-vm-'))
    const consoles = join(work, 'console')
    mkdirSync(consoles)
    const runDir = join(work, 'run') // the host's view of "what booted", for deploy and gc
    mkdirSync(runDir)
    writeFileSync(join(work, 'cmdline'), '')
    const env = {CFSBOOT_RUN_DIR: runDir, CFSBOOT_CMDLINE: join(work, 'cmdline')}
    const times: string[] = []
    t.after(() => {
      for (const line of times) t.diagnostic(line)
      if (!process.env.CFSBOOT_KEEP_VM_WORK) rmSync(work, {recursive: true, force: true})
    })

    // --- images ----------------------------------------------------------------------------
    const initramfs = join(work, 'initramfs.img')
    cli(['initramfs', '--kmoddir', kernel.kmoddir, '--add-drivers', 'virtio_blk', '-o', initramfs], env)
    const built: Record<string, Built> = {}
    for (const v of ['1', '2']) {
      const rootfs = join(work, `rootfs-v${v}`)
      makeRootfs(rootfs, v, kernel, initramfs)
      const image = join(work, `v${v}.cfs`)
      const objects = join(work, `objects-v${v}`)
      const digest = cli(['build', rootfs, '-o', image, '--objects', objects], env).trim().split('\n').at(-1)!
      assert.match(digest, /^[0-9a-f]{64}$/)
      built[v] = {image, objects, digest}
    }
    const v1 = built['1']!
    const v2 = built['2']!
    const v1Objects = objectFiles(v1.objects)
    const v2Only = [...objectFiles(v2.objects)].filter((o) => !v1Objects.has(o))
    assert.ok(v2Only.length >= 1, 'v2 has objects of its own')
    const v1Data = objectPathOf(join(work, 'rootfs-v1', 'usr', 'share', 'cfsboot-test', 'data.txt'))

    // --- install, boot, change from the host ------------------------------------------------
    interface Machine {
      disk: TestDisk
      espDir: string
      conf: string
    }
    /** `cfsboot install to-disk --via-loopback`: a disk file with v1 installed (seal left to the first boot). */
    async function install(name: string, verity: 'require' | 'maybe'): Promise<Machine> {
      const conf = join(work, `${name}.conf`)
      writeFileSync(
        conf,
        `[gc]\nkeep-rollback = 1\n[boot]\nverity = ${verity}\nkernel-args = ${KERNEL_ARGS}\n`,
      )
      const path = join(work, `${name}.img`)
      const espDir = join(work, `${name}-esp`)
      if (process.env.CFSBOOT_VM_TEST_INSTALL === 'manual') {
        const disk = await installByHand({
          path,
          image: v1.image,
          objects: v1.objects,
          config: conf,
          espDir,
          deploy: (root) =>
            cli(
              [
                'deploy',
                v1.image,
                '--objects',
                v1.objects,
                '--sysroot',
                root,
                '--boot-dir',
                espDir,
                '--config',
                conf,
              ],
              env,
            ),
        })
        return {disk, espDir, conf}
      }
      const args = ['install', 'to-disk', '--via-loopback', path, '--size', '1G', '--esp-size', '512M']
      const t0 = Date.now()
      const out = JSON.parse(
        cli(
          [...args, '--image', v1.image, '--objects', v1.objects, '--config', conf, '--yes', '--json'],
          env,
        ),
      ) as InstallJson
      assert.equal(out.digest, v1.digest)
      // install to-disk made the filesystem: it seals the store on this host (no fs-verity here).
      assert.equal(out.verity.state, 'presealed')
      times.push(`install to-disk of ${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s`)
      const part = (label: string): {offset: number; size: number} => {
        const p = out.partitions.find((x) => x.name === label)
        assert.ok(p, `install made a ${label} partition`)
        return {offset: p.offset, size: p.size}
      }
      const disk: TestDisk = {path, esp: part('cfsboot-esp'), root: part('cfsboot-root')}
      return {disk, espDir, conf}
    }

    /**
     * `cfsboot install to-filesystem` into the mounted root of a blank disk: seal-pending on this
     * host. `extraObjects` valid objects (named by their digest) are added to the store, which
     * the first boot's seal covers too (every object in the store).
     */
    async function installFs(name: string, verity: 'require' | 'maybe', extraObjects = 0): Promise<Machine> {
      const conf = join(work, `${name}.conf`)
      writeFileSync(
        conf,
        `[gc]\nkeep-rollback = 1\n[boot]\nverity = ${verity}\nkernel-args = ${KERNEL_ARGS}\n`,
      )
      const espDir = join(work, `${name}-esp`)
      const disk = await installOnMountedRoot({
        path: join(work, `${name}.img`),
        espDir,
        install: (root) => {
          const out = JSON.parse(
            cli(
              [
                'install',
                'to-filesystem',
                root,
                '--boot-dir',
                espDir,
                '--image',
                v1.image,
                '--objects',
                v1.objects,
                '--config',
                conf,
                '--json',
              ],
              env,
            ),
          ) as InstallJson
          assert.equal(out.verity.state, 'seal-pending', 'a mounted target on a host without fs-verity')
          assert.ok(existsSync(join(root, 'composefs', 'seal-pending')))
          for (let i = 0; i < extraObjects; i++) {
            const data = randomBytes(256 + ((i * 7919) % 32768))
            const hex = digestHex(fsverityDigest(data))
            mkdirSync(join(root, 'composefs', 'objects', hex.slice(0, 2)), {recursive: true})
            writeFileSync(join(root, 'composefs', 'objects', hex.slice(0, 2), hex.slice(2)), data, {
              mode: 0o444,
            })
          }
        },
      })
      return {disk, espDir, conf}
    }

    let bootNo = 0
    /** Boots, records the console, and checks the test lines; prints the console on failure. */
    async function boot(
      m: Machine,
      name: string,
      check: (lines: Map<string, string>, vm: VmResult) => void,
      timeoutMs?: number,
    ): Promise<void> {
      bootNo++
      const vm = await bootVm({
        disk: m.disk.path,
        consoleFile: join(consoles, `${bootNo}-${name}.log`),
        // Generous: TCG on a machine shared with other jobs was seen at 2-3x the usual times.
        timeoutMs: timeoutMs ?? 300_000,
      })
      const lines = testLines(vm.console)
      times.push(
        `boot ${bootNo} (${name}): VM run ${vm.seconds.toFixed(1)} s, kernel uptime at init ${lines.get('uptime-at-init') ?? '-'} s, hook mount ${lines.get('mount-ms') ?? '-'} ms`,
      )
      try {
        assert.equal(vm.timedOut, false, 'the VM finished before the timeout')
        check(lines, vm)
      } catch (err) {
        console.error(
          `----- console of boot ${bootNo} (${name}) -----\n${vm.console}\n----- end of console -----`,
        )
        throw err
      }
      const digest = lines.get('digest')
      if (digest) writeFileSync(join(runDir, 'booted.json'), JSON.stringify({digest}))
    }

    /** Changes a disk from the host: the root partition mounted, the ESP read into espDir and written back. */
    async function onHost(
      m: Machine,
      fn: (root: string, args: string[]) => Promise<void> | void,
    ): Promise<void> {
      const esp = {path: m.disk.path, offset: m.disk.esp.offset}
      rmSync(m.espDir, {recursive: true, force: true}) // what gc removed must not come back
      await readFatToDir(esp, m.espDir)
      await withRoot(m.disk, async (root) => {
        await fn(root, ['--sysroot', root, '--boot-dir', m.espDir, '--config', m.conf])
      })
      await writeDirToFat(esp, m.espDir)
    }

    const verified = await install('verified', 'require')

    await t.test('1. first boot: v1 is /, pre-sealed by install, mounted with verity=require', async () => {
      await boot(verified, 'v1-first', (l, vm) => {
        assert.equal(l.get('version'), '1')
        assert.equal(l.get('digest'), v1.digest)
        assert.match(vm.console, new RegExp(`cfsboot: mounted ${v1.digest} in \\d+ ms`))
        assert.doesNotMatch(vm.console, /cfsboot: sealed:/, 'nothing sealed in the initramfs')
        // The kernel measures every object as its name and the image as its digest.
        assert.equal(l.get('objects'), String(v1Objects.size))
        assert.equal(l.get('measure-ok'), String(v1Objects.size))
        assert.equal(l.get('measure-bad'), '0')
        assert.equal(l.get('image-measure'), `sha256:${v1.digest}`)
        assert.equal(l.get('record-verity'), 'require')
        assert.equal(l.get('image-verity'), 'true')
        assert.equal(l.get('overlay-verity'), 'require')
        assert.equal(l.get('root'), 'composefs:overlay')
        assert.equal(l.get('etc'), 'writable')
        assert.equal(l.get('etc-note'), 'written-under-v1')
        assert.equal(l.get('var'), 'shared')
        assert.equal(l.get('var-boots'), '1')
        assert.equal(l.get('data'), 'data-of-v1')
        assert.equal(l.get('done'), '', 'init ran to the end')
      })
      await withRoot(verified.disk, async (root) => {
        assert.equal(existsSync(join(root, 'composefs', 'seal-pending')), false, 'no seal-pending marker')
      })
    })

    await t.test('4a. a tampered object: reading its file fails with EIO', async () => {
      await onHost(verified, (root) => {
        tamper(join(root, 'composefs', 'objects', v1Data), join(v1.objects, v1Data), 0)
      })
      await boot(verified, 'tampered-object', (l, vm) => {
        assert.equal(
          l.get('version'),
          '1',
          'the system still boots (the tampered file is not needed to boot)',
        )
        assert.equal(l.get('image-verity'), 'true')
        assert.equal(l.get('var-boots'), '2')
        assert.equal(l.get('data'), 'error')
        assert.match(vm.console, /CFSBOOT-TEST-ERROR .*Input\/output error/)
      })
    })

    await t.test('4b. a tampered image: the initramfs refuses to boot', async () => {
      const image = (root: string): string => join(root, 'composefs', 'images', v1.digest)
      await onHost(verified, (root) => {
        tamper(image(root), v1.image, 2000)
      })
      await boot(verified, 'tampered-image', (l, vm) => {
        assert.match(vm.console, new RegExp(`cfsboot: refusing to boot: image ${v1.digest} has no fs-verity`))
        assert.equal(l.get('version'), undefined, 'nothing booted')
        assert.doesNotMatch(vm.console, /cfsboot: mounted /)
      })
      // The attacker also asks for sealing: the digest check still refuses the image.
      await onHost(verified, (root) => {
        writeFileSync(join(root, 'composefs', 'seal-pending'), '')
      })
      await boot(verified, 'tampered-image-seal', (l, vm) => {
        assert.match(
          vm.console,
          new RegExp(`cfsboot: refusing to boot: image ${v1.digest} does not match its digest`),
        )
        assert.equal(l.get('version'), undefined, 'nothing booted')
      })
    })

    const FALLBACK_EXTRA = 300
    const fallback = await installFs('fallback', 'require', FALLBACK_EXTRA)

    await t.test(
      '1b. install to-filesystem (seal-pending): the first boot seals in the initramfs',
      async () => {
        const n = v1Objects.size + FALLBACK_EXTRA
        await boot(
          fallback,
          'fallback-seal',
          (l, vm) => {
            const sealed = new RegExp(
              `cfsboot: sealed: fs-verity enabled on the image and ${n} object\\(s\\) in (\\d+) ms`,
            ).exec(vm.console)
            assert.ok(sealed, `the initramfs sealed ${n} objects`)
            times.push(
              `fallback seal in the initramfs: ${n} objects in ${sealed[1]} ms (${((n * 1000) / Number(sealed[1])).toFixed(0)} objects/s)`,
            )
            assert.equal(l.get('version'), '1')
            assert.equal(l.get('overlay-verity'), 'require')
            assert.equal(l.get('image-verity'), 'true')
            assert.equal(l.get('measure-ok'), String(n))
            assert.equal(l.get('measure-bad'), '0')
            assert.equal(l.get('data'), 'data-of-v1')
          },
          600_000,
        )
        await withRoot(fallback.disk, async (root) => {
          assert.equal(
            existsSync(join(root, 'composefs', 'seal-pending')),
            false,
            'the marker is gone after sealing',
          )
        })
      },
    )

    const lifecycle = await installFs('lifecycle', 'maybe')

    await t.test(
      '2. deploy v2 from the host, reboot: v2 is /, /etc change carried, /var shared',
      async () => {
        await boot(lifecycle, 'lifecycle-v1', (l, vm) => {
          assert.equal(l.get('version'), '1')
          assert.match(vm.console, new RegExp(`cfsboot: mounted ${v1.digest} in \\d+ ms \\(verity=maybe`))
          assert.equal(l.get('overlay-verity'), 'none')
          assert.equal(l.get('etc-note'), 'written-under-v1')
        })
        await onHost(lifecycle, (root, args) => {
          cli(['deploy', v2.image, '--objects', v2.objects, ...args], env)
        })
        await boot(lifecycle, 'v2', (l, vm) => {
          assert.equal(l.get('version'), '2')
          assert.equal(l.get('digest'), v2.digest)
          assert.match(vm.console, new RegExp(`cfsboot: mounted ${v2.digest} in \\d+ ms`))
          assert.equal(l.get('etc'), 'writable')
          assert.equal(l.get('etc-note'), 'written-under-v1', 'the /etc change made under v1 is still there')
          assert.equal(l.get('var'), 'shared')
          assert.equal(l.get('var-boots'), '2')
          assert.equal(l.get('data'), 'data-of-v2')
        })
      },
    )

    await t.test(
      '3. rollback, reboot: v1 again; gc frees v2-only objects only once v2 is dropped',
      async () => {
        await onHost(lifecycle, (_root, args) => {
          cli(['rollback', ...args], env)
        })
        await boot(lifecycle, 'rollback-v1', (l) => {
          assert.equal(l.get('version'), '1')
          assert.equal(l.get('digest'), v1.digest)
          assert.equal(l.get('etc-note'), 'written-under-v1')
          assert.equal(l.get('var-boots'), '3')
          assert.equal(l.get('data'), 'data-of-v1')
        })
        await onHost(lifecycle, (root, args) => {
          const store = join(root, 'composefs', 'objects')
          cli(['gc', ...args], env)
          for (const o of v2Only) assert.ok(existsSync(join(store, o)), `v2 is the rollback: gc keeps ${o}`)
          cli(['undeploy', v2.digest, ...args], env)
          cli(['gc', ...args], env)
          for (const o of v2Only) assert.equal(existsSync(join(store, o)), false, `v2 dropped: gc frees ${o}`)
          for (const o of v1Objects) assert.ok(existsSync(join(store, o)), `gc keeps v1's ${o}`)
          assert.equal(existsSync(join(root, 'composefs', 'images', v2.digest)), false)
        })
        await boot(lifecycle, 'after-gc-v1', (l) => {
          assert.equal(l.get('version'), '1')
          assert.equal(l.get('data'), 'data-of-v1')
          assert.equal(l.get('var-boots'), '4')
        })
      },
    )
  },
)
