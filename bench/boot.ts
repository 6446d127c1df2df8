// Boot time of a real distribution (the debian-systemd corpus made bootable by `cfsboot prepare
// --fix`, test/helpers/device-tree.ts) in the same QEMU VM (TCG, OVMF, systemd-boot, 2 GiB, one
// vCPU), three ways:
//   composefs, verity=require   `install to-disk` from this host (pre-sealed store)
//   composefs, verity=maybe     the same disk, the entry's cfsboot.verity= switched
//   plain ext4                  the same tree on an ext4 root (mkfs.ext4 -d), booted by a
//                               dracut initramfs with rootfs-block (root=/dev/vda2)
// Measured inside the VM: multi-user.target's ActiveEnterTimestampMonotonic (time since the
// kernel started) and the initramfs's composefs mount step (booted.json mountMs).
//
//   node dist/bench/boot.js [--runs N] [--write]
//
// Prints a markdown section; --write replaces the "Boot" section of docs/benchmarks.md with it.
// Needs root, the VM tools (test/helpers/vm.ts) and the corpus (corpus.sh debian-systemd).
import {execFileSync} from 'node:child_process'
import {copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {loadavg} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {makeFat, readFatToDir, writeDirToFat} from '../src/system/fat.js'
import {DEVICE_KERNEL_ARGS, makeDeviceTree, VMTEST_DIR, VMTEST_SCRIPT} from '../test/helpers/device-tree.js'
import {TestDisk, withRoot} from '../test/helpers/vm-disk.js'
import {vmTestCli} from '../test/helpers/vm-rootfs.js'
import {bootVm, cachedKernel, SYSTEMD_BOOT_EFI, testLines, vmSkipReason} from '../test/helpers/vm.js'

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const BENCHMARKS_MD = join(REPO, 'docs', 'benchmarks.md')
const SECTION = '## Boot of a real distribution (`bench/boot.ts`)'
const runsAt = process.argv.indexOf('--runs')
const RUNS = runsAt >= 0 ? Number(process.argv[runsAt + 1]) : 1
const BOOT_TIMEOUT_MS = 10 * 60_000

interface Sample {
  multiUser: number
  mountMs: number | null
  vmSeconds: number
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

async function boot(disk: string, consoleFile: string): Promise<Sample> {
  const vm = await bootVm({disk, consoleFile, memoryMb: 2048, timeoutMs: BOOT_TIMEOUT_MS})
  const l = testLines(vm.console)
  const us = Number(l.get('multi-user-us'))
  if (vm.timedOut || !Number.isFinite(us) || us <= 0)
    throw new Error(`boot of ${disk} did not report multi-user.target (console: ${consoleFile})`)
  const mount = l.get('mount-ms')
  return {multiUser: us / 1e6, mountMs: mount ? Number(mount) : null, vmSeconds: vm.seconds}
}

/** A GPT disk: FAT ESP with systemd-boot and one entry, and `tree` as an ext4 root. */
async function plainDisk(
  work: string,
  tree: string,
  kver: string,
  initramfs: string,
  vmlinuz: string,
): Promise<string> {
  const disk = join(work, 'plain.img')
  execFileSync('truncate', ['-s', '3G', disk])
  execFileSync('sfdisk', ['--quiet', disk], {
    input: `label: gpt\nsize=256MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=plain-esp\nname=plain-root\n`,
  })
  const dump = execFileSync('sfdisk', ['--json', disk], {encoding: 'utf8'})
  const parts = (JSON.parse(dump) as {partitiontable: {partitions: {start: number; size: number}[]}})
    .partitiontable.partitions
  const esp = {offset: parts[0]!.start * 512, size: parts[0]!.size * 512}
  const root = {offset: parts[1]!.start * 512, size: parts[1]!.size * 512}
  execFileSync('mkfs.ext4', [
    '-q',
    '-F',
    '-b',
    '4096',
    '-L',
    'plain-root',
    '-E',
    `offset=${root.offset}`,
    '-d',
    tree,
    disk,
    String(Math.floor(root.size / 4096)),
  ])
  const espDir = join(work, 'plain-esp')
  mkdirSync(join(espDir, 'EFI', 'BOOT'), {recursive: true})
  mkdirSync(join(espDir, 'loader', 'entries'), {recursive: true})
  mkdirSync(join(espDir, 'plain'), {recursive: true})
  copyFileSync(SYSTEMD_BOOT_EFI, join(espDir, 'EFI', 'BOOT', 'BOOTX64.EFI'))
  copyFileSync(vmlinuz, join(espDir, 'plain', 'vmlinuz'))
  copyFileSync(initramfs, join(espDir, 'plain', 'initramfs.img'))
  writeFileSync(join(espDir, 'loader', 'loader.conf'), 'timeout 0\n')
  writeFileSync(
    join(espDir, 'loader', 'entries', 'plain.conf'),
    `title plain ext4\nversion ${kver}\nlinux /plain/vmlinuz\ninitrd /plain/initramfs.img\noptions root=/dev/vda2 rw ${DEVICE_KERNEL_ARGS}\n`,
  )
  await makeFat({path: disk, offset: esp.offset}, esp.size, 'PLAIN-ESP')
  await writeDirToFat({path: disk, offset: esp.offset}, espDir)
  return disk
}

async function main(): Promise<void> {
  const skip = vmSkipReason()
  if (skip) throw new Error(skip)
  const kernel = cachedKernel()!
  const work = mkdtempSync('/var/tmp/cfsboot-bench-boot-')
  const env = {CFSBOOT_RUN_DIR: join(work, 'run'), CFSBOOT_CMDLINE: join(work, 'cmdline')}
  writeFileSync(env.CFSBOOT_CMDLINE, '')
  const cli = (args: string[]): string => vmTestCli(args, env)
  const load = loadavg()[0]!.toFixed(1)
  try {
    const tree = join(work, 'tree')
    const conf = makeDeviceTree(tree, kernel, env)
    mkdirSync(join(tree, VMTEST_DIR.slice(1)), {recursive: true})
    const image = join(work, 'v1.cfs')
    const objects = join(work, 'objects')
    cli(['build', tree, '-o', image, '--objects', objects])
    const entries = readdirSync(objects)
      .filter((d) => /^[0-9a-f]{2}$/.test(d))
      .reduce((n, d) => n + readdirSync(join(objects, d)).length, 0)

    // composefs, verity=require: a host install (pre-sealed), the report-only script on /var.
    const cfs = join(work, 'cfs.img')
    cli([
      'install',
      'to-disk',
      '--via-loopback',
      cfs,
      '--size',
      '2G',
      '--image',
      image,
      '--objects',
      objects,
      '--config',
      conf,
      '--yes',
    ])
    const sfd = JSON.parse(execFileSync('sfdisk', ['--json', cfs], {encoding: 'utf8'})) as {
      partitiontable: {partitions: {start: number; size: number}[]}
    }
    const [p1, p2] = sfd.partitiontable.partitions
    const disk: TestDisk = {
      path: cfs,
      esp: {offset: p1!.start * 512, size: p1!.size * 512},
      root: {offset: p2!.start * 512, size: p2!.size * 512},
    }
    await withRoot(disk, async (root) => {
      const dir = join(root, VMTEST_DIR.slice(1))
      mkdirSync(dir, {recursive: true})
      writeFileSync(join(dir, 'run.sh'), VMTEST_SCRIPT)
      writeFileSync(join(dir, 'report-only'), '')
    })
    // composefs, verity=maybe: the same disk, the entry switched.
    const maybe = join(work, 'maybe.img')
    execFileSync('cp', ['--sparse=always', cfs, maybe])
    const espDir = join(work, 'maybe-esp')
    await readFatToDir({path: maybe, offset: disk.esp.offset}, espDir)
    for (const e of readdirSync(join(espDir, 'loader', 'entries'))) {
      const p = join(espDir, 'loader', 'entries', e)
      writeFileSync(p, readFileSync(p, 'utf8').replace('cfsboot.verity=require', 'cfsboot.verity=maybe'))
    }
    await writeDirToFat({path: maybe, offset: disk.esp.offset}, espDir)

    // plain ext4: the same tree, without the health unit (it checks a cfsboot boot) and with
    // the script on its own /var.
    for (const wants of readdirSync(join(tree, 'etc', 'systemd', 'system')).filter((n) =>
      n.endsWith('.wants'),
    ))
      rmSync(join(tree, 'etc', 'systemd', 'system', wants, 'cfsboot-health.service'), {force: true})
    writeFileSync(join(tree, VMTEST_DIR.slice(1), 'run.sh'), VMTEST_SCRIPT)
    writeFileSync(join(tree, VMTEST_DIR.slice(1), 'report-only'), '')
    const plainInitrd = join(work, 'plain-initramfs.img')
    cli([
      'initramfs',
      '--kmoddir',
      kernel.kmoddir,
      '--add-drivers',
      'virtio_blk',
      '--add-modules',
      'rootfs-block',
      '-o',
      plainInitrd,
    ])
    const plain = await plainDisk(work, tree, kernel.kver, plainInitrd, kernel.vmlinuz)

    const samples: Record<string, Sample[]> = {plain: [], require: [], maybe: []}
    for (let i = 0; i < RUNS; i++) {
      for (const [name, path] of [
        ['plain', plain],
        ['require', cfs],
        ['maybe', maybe],
      ] as const) {
        const s = await boot(path, join(work, `${name}-${i}.log`))
        samples[name]!.push(s)
        console.error(
          `${name} run ${i + 1}: multi-user.target at ${s.multiUser.toFixed(2)} s, mount step ${s.mountMs ?? '-'} ms`,
        )
      }
    }
    const mu = (n: string): number => median(samples[n]!.map((s) => s.multiUser))
    const mount = (n: string): number => median(samples[n]!.map((s) => s.mountMs ?? 0))
    const pct = (x: number): string => `${(x * 100).toFixed(1)} %`
    const lines = [
      SECTION,
      '',
      `Debian bookworm minbase + systemd-sysv, udev, kmod, fsverity (${entries} objects in the store),`,
      `Linux ${kernel.kver}, QEMU TCG, OVMF + systemd-boot, 2 GiB, 1 vCPU; median of ${RUNS} run(s) each, booted`,
      `in turn. Load average at the start: ${load} (other jobs shared the 2 cores: absolute times are`,
      'slower than on a quiet machine, the ratios are what to read).',
      '',
      '| boot | multi-user.target (s since kernel start) | composefs mount step (ms) | vs plain ext4 |',
      '|---|---|---|---|',
      `| plain ext4 root | ${mu('plain').toFixed(2)} | – | 1.00 |`,
      `| composefs, verity=require | ${mu('require').toFixed(2)} | ${mount('require')} | ${(mu('require') / mu('plain')).toFixed(2)} |`,
      `| composefs, verity=maybe | ${mu('maybe').toFixed(2)} | ${mount('maybe')} | ${(mu('maybe') / mu('plain')).toFixed(2)} |`,
      '',
      `The mount step (physical root, image check, EROFS + overlay, /etc, /var) is ${pct(mount('require') / 1000 / mu('plain'))} of the`,
      `plain-ext4 boot with verity=require (target: under 5 %).`,
      '',
    ]
    const text = lines.join('\n')
    console.log(text)
    if (process.argv.includes('--write')) {
      const md = readFileSync(BENCHMARKS_MD, 'utf8')
      const start = md.indexOf(SECTION)
      const rest = start >= 0 ? md.slice(start + SECTION.length) : ''
      const next = rest.search(/\n## /)
      const updated =
        start >= 0
          ? md.slice(0, start) + text + (next >= 0 ? rest.slice(next + 1) : '')
          : md.trimEnd() + '\n\n' + text
      writeFileSync(BENCHMARKS_MD, updated)
    }
  } finally {
    if (!process.env.CFSBOOT_KEEP_VM_WORK) rmSync(work, {recursive: true, force: true})
  }
}

await main()
