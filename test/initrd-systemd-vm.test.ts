// The systemd flavour of the initramfs, booted for real: the same busybox rootfs as
// boot-vm.test.ts, with an initramfs from `cfsboot initramfs --flavour systemd`, installed by
// `cfsboot install to-disk --via-loopback` with [boot] verity = require and booted through
// OVMF → systemd-boot → systemd in the initramfs → cfsboot-setup-root.service → the rootfs's
// /sbin/init. The host has no fs-verity; the install pre-seals the store (as in
// boot-vm.test.ts), so the first boot seals nothing and mounts with verity=require at once, as
// does the second. Then the image is tampered with and the unit must
// refuse it. The same rootfs with the shell flavour is booted twice too, so the mount step's
// time of both flavours is printed side by side.
import assert from 'node:assert/strict'
import {existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {schemaErrors} from './helpers/sysroot.js'
import {TestDisk, withRoot} from './helpers/vm-disk.js'
import {makeBusyboxRootfs, vmTestCli as cli} from './helpers/vm-rootfs.js'
import {bootVm, cachedKernel, testLines, VmResult, vmSkipReason} from './helpers/vm.js'

const skip =
  vmSkipReason() ||
  (existsSync('/usr/lib/systemd/systemd')
    ? false
    : 'the systemd flavour needs systemd on the build machine (Debian package systemd)')
/** rd.shell=0: a refused boot halts instead of waiting at an emergency shell. */
const KERNEL_ARGS = 'console=ttyS0 panic=-1 rd.shell=0 loglevel=4'

const INIT = `#!/bin/sh
# initrd-systemd VM test init: report what the initramfs set up, then power off.
export PATH=/usr/bin:/bin
t() { echo "CFSBOOT-TEST $*"; }
[ -r /proc/uptime ] || mount -t proc proc /proc
read -r up _ < /proc/uptime
rec=/run/cfsboot/booted.json
if [ -f $rec ]; then t "booted-json=present"; else t "booted-json=missing"; fi
t "version=$(cat /usr/share/cfsboot-test/version) digest=$(sed -n 's/.*"digest": *"\\([0-9a-f]*\\)".*/\\1/p' $rec)"
t "uptime-at-init=$up mount-ms=$(sed -n 's/.*"mountMs": *\\([0-9]*\\).*/\\1/p' $rec)"
t "record-verity=$(sed -n 's/.*"verity": *"\\([a-z]*\\)".*/\\1/p' $rec) image-verity=$(sed -n 's/.*"imageVerity": *\\([a-z]*\\).*/\\1/p' $rec)"
t "root=$(awk '$2=="/"{print $1":"$3}' /proc/mounts | tail -n 1)"
case ",$(awk '$2=="/"{print $4}' /proc/mounts | tail -n 1)," in
  *,verity=require,*) t "overlay-verity=require" ;;
  *) t "overlay-verity=none" ;;
esac
if echo x > /etc/cfsboot-test-w 2> /dev/null; then t "etc=writable"; else t "etc=readonly"; fi
if grep -q ' /sysroot ' /proc/mounts; then t "sysroot=mounted"; else t "sysroot=missing"; fi
t "done"
sync
poweroff -f
`

interface InstallJson {
  digest: string
  verity: {state: string}
  partitions: {name: string; offset: number; size: number}[]
}

test(
  'VM: systemd in the initramfs boots by digest with verity=require and refuses a tampered image',
  {skip, timeout: 20 * 60_000},
  async (t) => {
    const kernel = cachedKernel()!
    const work = mkdtempSync(join(tmpdir(), 'cfsboot-vm-sd-'))
    const consoles = join(work, 'console')
    mkdirSync(consoles)
    const env = {CFSBOOT_RUN_DIR: join(work, 'run'), CFSBOOT_CMDLINE: join(work, 'cmdline')}
    writeFileSync(env.CFSBOOT_CMDLINE, '')
    const times: string[] = []
    t.after(() => {
      for (const line of times) t.diagnostic(line)
      if (!process.env.CFSBOOT_KEEP_VM_WORK) rmSync(work, {recursive: true, force: true})
    })
    const conf = join(work, 'cfsboot.conf')
    writeFileSync(conf, `[boot]\nverity = require\nkernel-args = ${KERNEL_ARGS}\n`)

    /** An image of the test rootfs whose initramfs has the given flavour; a disk with it installed. */
    function installFlavour(flavour: 'shell' | 'systemd'): {disk: TestDisk; image: string; digest: string} {
      const initramfs = join(work, `initramfs-${flavour}.img`)
      const out = JSON.parse(
        cli(
          [
            'initramfs',
            '--flavour',
            flavour,
            '--kmoddir',
            kernel.kmoddir,
            '--add-drivers',
            'virtio_blk',
            '-o',
            initramfs,
            '--json',
          ],
          env,
        ),
      ) as {flavour: string; modules: string[]}
      assert.equal(schemaErrors('initramfs', out), '')
      assert.equal(out.flavour, flavour)
      assert.equal(out.modules.includes('systemd'), flavour === 'systemd')
      const rootfs = join(work, `rootfs-${flavour}`)
      makeBusyboxRootfs({dir: rootfs, version: '1', init: INIT, kernel, initramfs})
      const image = join(work, `${flavour}.cfs`)
      const objects = join(work, `objects-${flavour}`)
      const digest = cli(['build', rootfs, '-o', image, '--objects', objects], env).trim().split('\n').at(-1)!
      const path = join(work, `${flavour}.img`)
      const inst = JSON.parse(
        cli(
          [
            'install',
            'to-disk',
            '--via-loopback',
            path,
            '--size',
            '1G',
            '--esp-size',
            '512M',
            '--image',
            image,
            '--objects',
            objects,
            '--config',
            conf,
            '--yes',
            '--json',
          ],
          env,
        ),
      ) as InstallJson
      assert.equal(inst.digest, digest)
      assert.equal(inst.verity.state, 'presealed') // to-disk pre-seals on any host
      const part = (name: string): {offset: number; size: number} => {
        const p = inst.partitions.find((x) => x.name === name)!
        return {offset: p.offset, size: p.size}
      }
      return {disk: {path, esp: part('cfsboot-esp'), root: part('cfsboot-root')}, image, digest}
    }

    let bootNo = 0
    async function boot(
      disk: TestDisk,
      name: string,
      check: (lines: Map<string, string>, vm: VmResult) => void,
      stopOnRefusal = false,
    ): Promise<Map<string, string>> {
      bootNo++
      const vm = await bootVm({
        disk: disk.path,
        consoleFile: join(consoles, `${bootNo}-${name}.log`),
        timeoutMs: 240_000,
        // A refused boot halts (dracut's die under systemd): nothing powers the VM off.
        ...(stopOnRefusal && {stopOn: {pattern: /cfsboot: refusing to boot/, afterMs: 3000}}),
      })
      const lines = testLines(vm.console)
      times.push(
        `boot ${bootNo} (${name}): VM run ${vm.seconds.toFixed(1)} s, kernel uptime at init ${lines.get('uptime-at-init') ?? '-'} s, mount step ${lines.get('mount-ms') ?? '-'} ms`,
      )
      try {
        if (!stopOnRefusal) assert.equal(vm.timedOut, false, 'the VM finished before the timeout')
        check(lines, vm)
      } catch (err) {
        console.error(
          `----- console of boot ${bootNo} (${name}) -----\n${vm.console}\n----- end of console -----`,
        )
        throw err
      }
      return lines
    }

    const verifiedBoot = (digest: string) => (l: Map<string, string>, vm: VmResult) => {
      assert.match(vm.console, new RegExp(`cfsboot: mounted ${digest} in \\d+ ms \\(verity=require`))
      assert.equal(l.get('booted-json'), 'present')
      assert.equal(l.get('digest'), digest)
      assert.equal(l.get('record-verity'), 'require')
      assert.equal(l.get('image-verity'), 'true')
      assert.equal(l.get('overlay-verity'), 'require')
      assert.equal(l.get('root'), 'composefs:overlay')
      assert.equal(l.get('etc'), 'writable')
      assert.equal(l.get('sysroot'), 'mounted')
      assert.equal(l.get('done'), '')
    }

    const sd = installFlavour('systemd')
    const mountMs: Record<string, string> = {}

    await t.test(
      'systemd flavour: first boot mounts the pre-sealed store by digest with verity=require',
      async () => {
        await boot(sd.disk, 'systemd-first', (l, vm) => {
          verifiedBoot(sd.digest)(l, vm)
          assert.doesNotMatch(vm.console, /cfsboot: sealed:/, 'a pre-sealed store needs no sealing at boot')
          // It was systemd in the initramfs (its banner), and the unit mounted the root (systemd's
          // status lines shorten unit names: "cfsboot-setup-roo…").
          assert.match(vm.console, /Welcome to .*\(Initramfs\)/)
          assert.match(vm.console, /Finished .*cfsboot-setup-roo/)
          assert.doesNotMatch(vm.console, /gpt-auto-root/)
        })
      },
    )

    await t.test('systemd flavour: second boot mounts the same store', async () => {
      const l = await boot(sd.disk, 'systemd-sealed', verifiedBoot(sd.digest))
      mountMs.systemd = l.get('mount-ms')!
    })

    await t.test('systemd flavour: a tampered image is refused', async () => {
      await withRoot(sd.disk, async (root) => {
        // A sealed file cannot be opened by this host's kernel: the attacker writes a new one.
        const file = join(root, 'composefs', 'images', sd.digest)
        const data = readFileSync(sd.image)
        data.write('TAMPERED', 2000, 'latin1')
        writeFileSync(`${file}.t`, data)
        renameSync(`${file}.t`, file)
      })
      await boot(
        sd.disk,
        'systemd-tampered',
        (l, vm) => {
          assert.match(
            vm.console,
            new RegExp(`cfsboot: refusing to boot: image ${sd.digest} has no fs-verity`),
          )
          assert.doesNotMatch(vm.console, /cfsboot: mounted /)
          assert.equal(l.get('version'), undefined, 'nothing booted')
        },
        true,
      )
    })

    const sh = installFlavour('shell')
    await t.test('shell flavour, same rootfs: first and second boot (for the mount step time)', async () => {
      await boot(sh.disk, 'shell-first', (l, vm) => {
        verifiedBoot(sh.digest)(l, vm)
        assert.doesNotMatch(vm.console, /Welcome to .*\(Initramfs\)/, 'no systemd in the shell flavour')
      })
      const l = await boot(sh.disk, 'shell-sealed', verifiedBoot(sh.digest))
      mountMs.shell = l.get('mount-ms')!
      times.push(
        `mount step, sealed store, verity=require: shell flavour ${mountMs.shell} ms, systemd flavour ${mountMs.systemd} ms`,
      )
    })
  },
)
