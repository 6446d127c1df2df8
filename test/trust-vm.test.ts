// Trusted boot and automatic rollback, for real: QEMU with Secure Boot firmware (OVMF with
// Debian's test "snakeoil" key enrolled), systemd-boot signed with that key, and per deployment a
// signed unified kernel image (UKI) whose embedded command line carries the image digest.
//
//   1. v1 (installed with --uki-key/--uki-cert) boots with Secure Boot on; the booted digest is v1's.
//   2. A copy of v1's UKI with the digest in .cmdline altered, and the same UKI with its signature
//      removed, made the default in turn: the firmware refuses both ("Access Denied"), nothing boots.
//   3. v2 deployed from the host (boot counting, tries = 2) has a failing required health check:
//      systemd-boot tries it twice (cfsboot-health records why and reboots each time), then boots
//      v1 by itself; `cfsboot status --json`, run on the host against the disk, says v2 failed
//      (with the check's name) and v1 is booted. The EFI-variable part of status is skipped there
//      (CFSBOOT_EFIVARS_DIR points at nothing); inside the VM the program reads the variables.
//   4. v3 deployed, its checks pass: marked good on its first boot (the counter is gone from the
//      file name) and still the default after another reboot.
// Each boot's time and the composefs mount time are printed (t.diagnostic).
//
// The disk uses verity=maybe: the host's kernel has no fs-verity and could not read a sealed
// store to deploy v2 and v3 (see test/boot-vm.test.ts). The ESP is read and written with mtools.
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {Ajv} from 'ajv'

import {parsePeHeaders, sectionRange} from '../src/boot/pe.js'
import {readFatToDir, writeDirToFat} from '../src/system/fat.js'
import {hasTool} from './helpers/tools.js'
import {TestDisk, withRoot} from './helpers/vm-disk.js'
import {makeBusyboxRootfs, vmTestCli} from './helpers/vm-rootfs.js'
import {
  bootVm,
  cachedKernel,
  OVMF_SB_CODE,
  OVMF_SB_VARS,
  SNAKEOIL_CERT,
  SNAKEOIL_KEY,
  TestKernel,
  testLines,
  VmResult,
  vmSkipReason,
} from './helpers/vm.js'

const REPO = join(import.meta.dirname, '..', '..')
const HEALTH_PROGRAM = join(REPO, 'templates', 'health', 'cfsboot-health')

function skipReason(): string | false {
  const base = vmSkipReason()
  const missing: string[] = []
  for (const f of [OVMF_SB_CODE, OVMF_SB_VARS, SNAKEOIL_KEY, SNAKEOIL_CERT])
    if (!existsSync(f)) missing.push(`${f} (Debian package ovmf)`)
  for (const t of ['sbsign', 'sbattach']) if (!hasTool(t)) missing.push(`${t} (Debian package sbsigntool)`)
  if (!hasTool('objcopy')) missing.push('objcopy (Debian package binutils)')
  if (!hasTool('openssl')) missing.push('openssl (to decrypt the snakeoil test key)')
  if (!existsSync('/usr/lib/systemd/boot/efi/linuxx64.efi.stub'))
    missing.push('linuxx64.efi.stub (Debian package systemd-boot-efi)')
  if (base) return missing.length ? `${base}; also ${missing.join(', ')}` : base
  return missing.length ? `trusted-boot VM test needs ${missing.join(', ')}` : false
}
const skip = skipReason()

const KERNEL_ARGS = 'console=ttyS0 panic=-1 rd.shell=0 loglevel=4'
const SECURE_BOOT_VAR = 'SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c'
const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'

// The test rootfs's init: report, load what the health program needs (busybox has no module
// index for xz modules: insmod with paths), run cfsboot-health (it reboots on failure), power off.
const INIT = `#!/bin/sh
export PATH=/usr/bin:/bin
t() { echo "CFSBOOT-TEST $*"; }
[ -r /proc/uptime ] || mount -t proc proc /proc
read -r up _ < /proc/uptime
grep -q ' /sys ' /proc/mounts || mount -t sysfs sysfs /sys
v=$(cat /usr/share/cfsboot-test/version)
rec=/run/cfsboot/booted.json
t "version=$v digest=$(sed -n 's/.*"digest": *"\\([0-9a-f]*\\)".*/\\1/p' $rec)"
t "uptime-at-init=$up mount-ms=$(sed -n 's/.*"mountMs": *\\([0-9]*\\).*/\\1/p' $rec)"
for m in fat vfat nls_cp437 nls_iso8859-1 efivarfs; do insmod /usr/lib/cfsboot-test/modules/$m.ko 2> /dev/null; done
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2> /dev/null
sb=$(tail -c 1 /sys/firmware/efi/efivars/${SECURE_BOOT_VAR} 2> /dev/null | od -An -tu1 | tr -d ' ')
t "secureboot=\${sb:-none}"
sel=$(tail -c +5 /sys/firmware/efi/efivars/LoaderEntrySelected-${LOADER_GUID} 2> /dev/null | tr -d '\\000')
t "entry-selected=\${sel:-none}"
t "cmdline-digest=$(tr ' ' '\\n' < /proc/cmdline | sed -n 's/^cfsboot.digest=//p')"
CFSBOOT_HEALTH_REBOOT="reboot -f" /usr/lib/cfsboot/cfsboot-health
t "health-exit=$?"
t "done"
sync
poweroff -f
`

interface Built {
  image: string
  objects: string
  digest: string
}

const cli = vmTestCli

/** A busybox rootfs with the kernel, the health program and the checks of `checks`. */
function makeRootfs(
  dir: string,
  version: string,
  kernel: TestKernel,
  initramfs: string,
  modules: string,
  checks: Record<string, string>,
): void {
  const lib = makeBusyboxRootfs({dir, version, init: INIT, kernel, initramfs})
  mkdirSync(join(dir, 'etc', 'cfsboot'))
  writeFileSync(join(dir, 'etc', 'cfsboot', 'cfsboot.conf'), '[health]\ntimeout = 20\non-failure = reboot\n')
  mkdirSync(join(lib, 'cfsboot', 'health.d'), {recursive: true})
  copyFileSync(HEALTH_PROGRAM, join(lib, 'cfsboot', 'cfsboot-health'))
  chmodSync(join(lib, 'cfsboot', 'cfsboot-health'), 0o755)
  for (const [name, body] of Object.entries(checks))
    writeFileSync(join(lib, 'cfsboot', 'health.d', name), `#!/bin/sh\n${body}\n`, {mode: 0o755})
  mkdirSync(join(lib, 'cfsboot-test'), {recursive: true})
  execFileSync('cp', ['-r', modules, join(lib, 'cfsboot-test', 'modules')])
}

/** fat, vfat, nls and efivarfs from the test kernel, decompressed (busybox insmod takes .ko). */
function extractModules(kernel: TestKernel, out: string): void {
  mkdirSync(out, {recursive: true})
  const wanted = {
    fat: 'fs/fat/fat',
    vfat: 'fs/fat/vfat',
    nls_cp437: 'fs/nls/nls_cp437',
    'nls_iso8859-1': 'fs/nls/nls_iso8859-1',
    efivarfs: 'fs/efivarfs/efivarfs',
  }
  for (const [name, rel] of Object.entries(wanted)) {
    const src = join(kernel.kmoddir, 'kernel', `${rel}.ko.xz`)
    if (!existsSync(src)) continue // built in
    writeFileSync(join(out, `${name}.ko`), execFileSync('xz', ['-dc', src], {maxBuffer: 1 << 26}))
  }
}

/** The ESP's UKIs (EFI/Linux), sorted. */
function ukis(espDir: string): string[] {
  const dir = join(espDir, 'EFI', 'Linux')
  return existsSync(dir) ? readdirSync(dir).sort() : []
}

test(
  'VM: Secure Boot with signed UKIs carrying the digest; boot counting and health checks roll back by themselves',
  {skip, timeout: 25 * 60_000},
  async (t) => {
    const kernel = cachedKernel()!
    const work = mkdtempSync(join(tmpdir(), 'cfsboot-trust-'))
    const consoles = join(work, 'console')
    mkdirSync(consoles)
    const runDir = join(work, 'run')
    mkdirSync(runDir)
    writeFileSync(join(work, 'cmdline'), '')
    // The host reads no EFI variables of the VM: status's loader part is null here.
    const env = {
      CFSBOOT_RUN_DIR: runDir,
      CFSBOOT_CMDLINE: join(work, 'cmdline'),
      CFSBOOT_EFIVARS_DIR: join(work, 'no-efivars'),
    }
    const times: string[] = []
    t.after(() => {
      for (const line of times) t.diagnostic(line)
      if (!process.env.CFSBOOT_KEEP_VM_WORK) rmSync(work, {recursive: true, force: true})
    })

    // Debian's snakeoil key is encrypted (password "snakeoil"); sbsign wants a plain key file.
    const key = join(work, 'db.key')
    execFileSync('openssl', ['pkey', '-in', SNAKEOIL_KEY, '-passin', 'pass:snakeoil', '-out', key])
    const cert = SNAKEOIL_CERT

    // --- images -------------------------------------------------------------------------------
    const initramfs = join(work, 'initramfs.img')
    cli(['initramfs', '--kmoddir', kernel.kmoddir, '--add-drivers', 'virtio_blk', '-o', initramfs], env)
    const modules = join(work, 'modules')
    extractModules(kernel, modules)
    const checks: Record<string, Record<string, string>> = {
      '1': {'10-ok': 'exit 0'},
      '2': {'10-ok': 'exit 0', '50-service-up': 'echo "service is not up"; exit 3'},
      '3': {'10-ok': 'exit 0', '50-service-up': 'echo up', '60-optional.wanted': 'exit 1'},
    }
    const built: Record<string, Built> = {}
    for (const v of ['1', '2', '3']) {
      const rootfs = join(work, `rootfs-v${v}`)
      makeRootfs(rootfs, v, kernel, initramfs, modules, checks[v]!)
      const image = join(work, `v${v}.cfs`)
      const objects = join(work, `objects-v${v}`)
      const digest = cli(['build', rootfs, '-o', image, '--objects', objects], env).trim().split('\n').at(-1)!
      assert.match(digest, /^[0-9a-f]{64}$/)
      built[v] = {image, objects, digest}
    }
    const [v1, v2, v3] = [built['1']!, built['2']!, built['3']!]

    // --- install v1 with a signed UKI ---------------------------------------------------------
    const conf = join(work, 'cfsboot.conf')
    writeFileSync(
      conf,
      `[gc]\nkeep-rollback = 1\n[boot]\nverity = maybe\ntries = 2\nkernel-args = ${KERNEL_ARGS}\n[uki]\nkey = ${key}\ncert = ${cert}\n`,
    )
    const diskPath = join(work, 'disk.img')
    const out = JSON.parse(
      cli(
        [
          'install',
          'to-disk',
          '--via-loopback',
          diskPath,
          '--size',
          '1G',
          '--esp-size',
          '512M',
          '--image',
          v1.image,
          '--objects',
          v1.objects,
          '--config',
          conf,
          '--uki-key',
          key,
          '--uki-cert',
          cert,
          '--yes',
          '--json',
        ],
        env,
      ),
    ) as {
      deployment: {entry: string; entryKind: string}
      bootLoader: {signed: boolean}
      partitions: {name: string; offset: number; size: number}[]
    }
    assert.equal(out.deployment.entryKind, 'uki')
    assert.match(out.deployment.entry, new RegExp(`^cfsboot-0000000001-${v1.digest.slice(0, 16)}\\.efi$`))
    assert.equal(out.bootLoader.signed, true)
    const part = (label: string): {offset: number; size: number} => {
      const p = out.partitions.find((x) => x.name === label)!
      return {offset: p.offset, size: p.size}
    }
    const disk: TestDisk = {path: diskPath, esp: part('cfsboot-esp'), root: part('cfsboot-root')}
    const espDir = join(work, 'esp')
    const esp = {path: disk.path, offset: disk.esp.offset}
    const hostArgs = (root: string): string[] => ['--sysroot', root, '--boot-dir', espDir, '--config', conf]

    async function onHost(fn: (root: string) => Promise<void> | void): Promise<void> {
      rmSync(espDir, {recursive: true, force: true})
      await readFatToDir(esp, espDir)
      await withRoot(disk, async (root) => {
        await fn(root)
      })
      await writeDirToFat(esp, espDir)
    }

    let bootNo = 0
    async function boot(
      name: string,
      check: (lines: Map<string, string>, vm: VmResult) => void,
      opts: {refused?: boolean} = {},
    ): Promise<void> {
      bootNo++
      const vm = await bootVm({
        disk: disk.path,
        consoleFile: join(consoles, `${bootNo}-${name}.log`),
        secureBoot: true,
        ...(opts.refused && {stopOn: {pattern: /Access Denied/, afterMs: 1500}, timeoutMs: 90_000}),
      })
      const lines = testLines(vm.console)
      times.push(
        `boot ${bootNo} (${name}): VM run ${vm.seconds.toFixed(1)} s, kernel uptime at init ${lines.get('uptime-at-init') ?? '-'} s, composefs mount ${lines.get('mount-ms') ?? '-'} ms`,
      )
      try {
        if (!opts.refused) assert.equal(vm.timedOut, false, 'the VM finished before the timeout')
        check(lines, vm)
      } catch (err) {
        console.error(`----- console of boot ${bootNo} (${name}) -----\n${vm.console}\n----- end -----`)
        throw err
      }
      const digest = lines.get('digest')
      if (digest) writeFileSync(join(runDir, 'booted.json'), JSON.stringify({digest}))
    }

    const statusSchema = JSON.parse(
      readFileSync(join(REPO, 'docs', 'schemas', 'status.json'), 'utf8'),
    ) as object
    const validateStatus = new Ajv({allErrors: true}).compile(statusSchema)
    interface StatusJson {
      booted: string | null
      loader: unknown
      deployments: {
        digest: string
        booted: boolean
        staged: boolean
        failed: boolean
        failedReason: string | null
        entry: string | null
        entryKind: string | null
        tries: {left: number; done: number} | null
        health: {result: string; failed: string[]; wantedFailed: string[]} | null
      }[]
    }
    const statusOf = (root: string): StatusJson => {
      const s = JSON.parse(cli(['status', '--json', ...hostArgs(root)], env)) as StatusJson
      assert.ok(validateStatus(s), JSON.stringify(validateStatus.errors))
      return s
    }

    await t.test('1. Secure Boot on: the signed UKI of v1 boots and carries v1’s digest', async () => {
      await boot('v1-secure-boot', (l, vm) => {
        assert.equal(l.get('version'), '1')
        assert.equal(l.get('digest'), v1.digest)
        assert.equal(l.get('cmdline-digest'), v1.digest, 'the digest came from the UKI’s signed .cmdline')
        assert.equal(l.get('secureboot'), '1', 'SecureBoot variable is 1')
        assert.equal(l.get('entry-selected'), out.deployment.entry.toLowerCase())
        assert.match(vm.console, new RegExp(`cfsboot: mounted ${v1.digest} in \\d+ ms`))
        assert.match(vm.console, /cfsboot-health: boot is good: 1 check\(s\) passed; .* has no boot counter/)
        assert.equal(l.get('health-exit'), '0')
      })
    })

    await t.test(
      '2. an altered digest in the UKI, and an unsigned UKI: Access Denied, nothing boots',
      async () => {
        const good = join(espDir, 'EFI', 'Linux', out.deployment.entry)
        const bad = `cfsboot-0000000099-${v1.digest.slice(0, 16)}.efi` // sorts above v1's: the default
        const variants: [string, (file: string) => void][] = [
          [
            'altered-digest',
            (file) => {
              const bytes = readFileSync(good)
              const cmd = parsePeHeaders(bytes).sections.find((s) => s.name === '.cmdline')!
              const r = sectionRange(cmd, bytes.length)
              const text = bytes.subarray(r.offset, r.offset + r.length).toString('latin1')
              const at = r.offset + text.indexOf(v1.digest) + 10
              bytes.write(bytes[at] === 0x30 ? '111111' : '000000', at, 'latin1')
              writeFileSync(file, bytes)
            },
          ],
          [
            'unsigned',
            (file) => {
              copyFileSync(good, file)
              execFileSync('sbattach', ['--remove', file]) // in place: the same UKI, no signature
            },
          ],
        ]
        try {
          for (const [name, make] of variants) {
            await onHost(() => {
              for (const f of ukis(espDir))
                if (f !== out.deployment.entry) rmSync(join(espDir, 'EFI', 'Linux', f))
              make(join(espDir, 'EFI', 'Linux', bad))
            })
            await boot(
              name,
              (l, vm) => {
                assert.match(vm.console, /Access Denied/, 'the firmware refused the image')
                assert.match(
                  vm.console,
                  new RegExp(`Error loading .*${bad.slice(0, 18)}.*Access Denied`, 'i'),
                )
                assert.equal(l.get('version'), undefined, 'no image booted')
                assert.doesNotMatch(vm.console, /cfsboot: mounted/)
              },
              {refused: true},
            )
          }
        } finally {
          // The next steps need v1 as the default again, whatever happened here.
          await onHost(() => rmSync(join(espDir, 'EFI', 'Linux', bad), {force: true}))
        }
      },
    )

    await t.test(
      '3. v2 fails its health check: tried twice, then v1 boots by itself; status says why',
      async () => {
        await onHost((root) => {
          const r = JSON.parse(
            cli(['deploy', v2.image, '--objects', v2.objects, '--json', ...hostArgs(root)], env),
          ) as {
            entry: string
            entryKind: string
            tries: number
          }
          assert.equal(r.entryKind, 'uki')
          assert.equal(r.tries, 2)
          assert.match(r.entry, new RegExp(`^cfsboot-0000000002-${v2.digest.slice(0, 16)}\\+2\\.efi$`))
        })
        for (const attempt of [1, 2]) {
          await boot(`v2-try-${attempt}`, (l, vm) => {
            assert.equal(l.get('version'), '2')
            assert.equal(l.get('digest'), v2.digest)
            assert.match(vm.console, /cfsboot-health: \[50-service-up\] service is not up/)
            assert.match(vm.console, /required check failed: 50-service-up \(exit 3\)/)
            assert.match(vm.console, /cfsboot-health: rebooting/)
            assert.equal(l.get('done'), undefined, 'the health program rebooted the machine')
          })
        }
        await boot('v1-fallback', (l) => {
          assert.equal(l.get('version'), '1', 'the boot loader fell back to v1')
          assert.equal(l.get('digest'), v1.digest)
          assert.equal(l.get('health-exit'), '0')
        })
        await onHost((root) => {
          assert.ok(
            ukis(espDir).includes(`cfsboot-0000000002-${v2.digest.slice(0, 16)}+0-2.efi`),
            ukis(espDir).join(' '),
          )
          const s = statusOf(root)
          assert.equal(s.booted, v1.digest)
          assert.equal(s.loader, null, 'no EFI variables on the host')
          const d1 = s.deployments.find((d) => d.digest === v1.digest)!
          const d2 = s.deployments.find((d) => d.digest === v2.digest)!
          assert.equal(d1.booted, true)
          assert.equal(d1.staged, true)
          assert.equal(d2.failed, true)
          assert.deepEqual(d2.tries, {left: 0, done: 2})
          assert.equal(d2.health?.result, 'failed')
          assert.deepEqual(d2.health?.failed, ['50-service-up (exit 3)'])
          assert.match(
            d2.failedReason ?? '',
            /ran out after 2 tries; health check failed: 50-service-up \(exit 3\)/,
          )
          // gc keeps v1 (booted, last good); v2 failed and is not a rollback target.
          const gc = JSON.parse(cli(['gc', '--dry-run', '--json', ...hostArgs(root)], env)) as {
            deployments: {kept: string[]}
          }
          assert.ok(gc.deployments.kept.includes(v1.digest))
        })
      },
    )

    await t.test(
      '4. v3 passes its checks: marked good on its first boot, still the default after a reboot',
      async () => {
        await onHost((root) => {
          cli(['deploy', v3.image, '--objects', v3.objects, ...hostArgs(root)], env)
        })
        await boot('v3-first', (l, vm) => {
          assert.equal(l.get('version'), '3')
          assert.match(vm.console, /wanted check failed: 60-optional.wanted \(exit 1\)/)
          assert.match(
            vm.console,
            /cfsboot-health: boot is good: 3 check\(s\) passed; marked cfsboot-0000000003-[0-9a-f]{16}\.efi/,
          )
          assert.equal(l.get('health-exit'), '0')
        })
        await boot('v3-again', (l) => {
          assert.equal(l.get('version'), '3', 'v3 stays the default')
          assert.equal(l.get('entry-selected'), `cfsboot-0000000003-${v3.digest.slice(0, 16)}.efi`)
        })
        await onHost((root) => {
          assert.ok(
            ukis(espDir).includes(`cfsboot-0000000003-${v3.digest.slice(0, 16)}.efi`),
            ukis(espDir).join(' '),
          )
          const s = statusOf(root)
          const d3 = s.deployments.find((d) => d.digest === v3.digest)!
          assert.equal(d3.staged, true)
          assert.equal(d3.booted, true)
          assert.equal(d3.tries, null)
          assert.equal(d3.health?.result, 'good')
          assert.deepEqual(d3.health?.wantedFailed, ['60-optional.wanted (exit 1)'])
        })
      },
    )
  },
)
