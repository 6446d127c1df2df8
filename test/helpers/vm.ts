// Boots a disk image in QEMU through UEFI (OVMF → the ESP's boot loader → the kernel) and
// returns what the serial console printed. Facts behind the flags: docs in
// shared/docs/machine-facts.md ("QEMU", "A full UEFI boot").
//
// - TCG only (KVM is unusable on these machines) and `-cpu qemu64,-cx16`: with cmpxchg16b the
//   6.12 kernel panics in about one boot in six under TCG.
// - Each run gets its own writable copy of OVMF.fd (the firmware writes its variables there).
// - `-no-reboot`: a guest that powers off, panics (panic=-1) or reboots ends the QEMU process.
// - A hard timeout kills QEMU, so a hung guest fails the test instead of hanging CI.
import {spawn} from 'node:child_process'
import {copyFileSync, existsSync, readFileSync, rmSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {hasTool} from './tools.js'

export const OVMF_FD = '/usr/share/ovmf/OVMF.fd'
/** Secure Boot firmware with Debian's test ("snakeoil") key enrolled in PK/KEK/db (package ovmf). */
export const OVMF_SB_CODE = '/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd'
export const OVMF_SB_VARS = '/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd'
/** The test key and certificate enrolled there (key password `snakeoil`; test use only). */
export const SNAKEOIL_KEY = '/usr/share/ovmf/PkKek-1-snakeoil.key'
export const SNAKEOIL_CERT = '/usr/share/ovmf/PkKek-1-snakeoil.pem'
export const SYSTEMD_BOOT_EFI = '/usr/lib/systemd/boot/efi/systemd-bootx64.efi'
export const BUSYBOX_STATIC = '/bin/busybox'
/** Where test/helpers/vm-kernel.sh leaves the 6.12 kernel (CFSBOOT_TEST_KERNEL_DIR overrides). */
export const KERNEL_CACHE = process.env.CFSBOOT_TEST_KERNEL_DIR ?? '/var/cache/cfsboot-test/kernel'
/** A full UEFI boot takes ~13 s here; this is the limit for one that hangs. */
export const DEFAULT_VM_TIMEOUT_MS = 120_000

export interface TestKernel {
  kver: string
  vmlinuz: string
  kmoddir: string
}

/** The cached test kernel, or null when vm-kernel.sh has not run. */
export function cachedKernel(dir = KERNEL_CACHE): TestKernel | null {
  const kverFile = join(dir, 'kver')
  if (!existsSync(kverFile)) return null
  const kver = readFileSync(kverFile, 'utf8').trim()
  const k = {
    kver,
    vmlinuz: join(dir, 'root', 'boot', `vmlinuz-${kver}`),
    kmoddir: join(dir, 'root', 'lib', 'modules', kver),
  }
  return existsSync(k.vmlinuz) && existsSync(join(k.kmoddir, 'modules.dep')) ? k : null
}

/** Why a VM test cannot run here, or false. Says what to install (CI's .ci/run installs all). */
export function vmSkipReason(): string | false {
  const missing: string[] = []
  if (!hasTool('qemu-system-x86_64')) missing.push('qemu-system-x86_64 (Debian package qemu-system-x86)')
  if (!existsSync(OVMF_FD)) missing.push(`${OVMF_FD} (Debian package ovmf)`)
  if (!existsSync(SYSTEMD_BOOT_EFI)) missing.push(`${SYSTEMD_BOOT_EFI} (Debian package systemd-boot-efi)`)
  if (!hasTool('dracut')) missing.push('dracut (Debian package dracut-core)')
  if (!hasTool('mcopy')) missing.push('mcopy (Debian package mtools)')
  if (!hasTool('mkfs.vfat')) missing.push('mkfs.vfat (Debian package dosfstools)')
  if (!hasTool('sfdisk')) missing.push('sfdisk (Debian package fdisk)')
  if (!hasTool('fsverity')) missing.push('fsverity (Debian package fsverity)')
  if (!existsSync(BUSYBOX_STATIC)) missing.push(`${BUSYBOX_STATIC} (Debian package busybox-static)`)
  if (!cachedKernel()) missing.push(`the test kernel in ${KERNEL_CACHE} (run test/helpers/vm-kernel.sh)`)
  if (process.getuid?.() !== 0) missing.push('root (loop devices and mounts)')
  return missing.length ? `VM test needs ${missing.join(', ')}` : false
}

export interface VmOptions {
  disk: string
  /** File the serial console is written to (kept for the test's failure output). */
  consoleFile: string
  timeoutMs?: number
  memoryMb?: number
  /**
   * Secure Boot: q35 with SMM, the snakeoil firmware read-only and a fresh copy of its variables
   * (flags from machine-facts.md, "Secure Boot and a signed UKI").
   */
  secureBoot?: boolean
  /** Stop the VM this long after the console first matches (a boot that never ends by itself). */
  stopOn?: {pattern: RegExp; afterMs: number}
}

export interface VmResult {
  console: string
  /** QEMU's exit code; null when it was killed. */
  exitCode: number | null
  timedOut: boolean
  /** Wall time of the whole VM run, firmware to power-off. */
  seconds: number
}

/** Boots `disk` through OVMF and waits for the VM to power off (or the timeout). */
export async function bootVm(opts: VmOptions): Promise<VmResult> {
  const vars = join(dirname(opts.consoleFile), `ovmf-${process.pid}-${Date.now()}.fd`)
  copyFileSync(opts.secureBoot ? OVMF_SB_VARS : OVMF_FD, vars)
  rmSync(opts.consoleFile, {force: true})
  const firmware = opts.secureBoot
    ? [
        '-machine',
        'q35,smm=on',
        '-global',
        'driver=cfi.pflash01,property=secure,value=on',
        '-drive',
        `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_SB_CODE}`,
        '-drive',
        `if=pflash,format=raw,unit=1,file=${vars}`,
      ]
    : ['-drive', `if=pflash,format=raw,file=${vars}`]
  const args = [
    ...firmware,
    '-accel',
    'tcg',
    '-cpu',
    'qemu64,-cx16',
    '-m',
    String(opts.memoryMb ?? 1024),
    '-smp',
    '1',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    `file:${opts.consoleFile}`,
    '-no-reboot',
    '-drive',
    `file=${opts.disk},format=raw,if=virtio`,
    '-nic',
    'none',
  ]
  const start = process.hrtime.bigint()
  const child = spawn('qemu-system-x86_64', args, {stdio: ['ignore', 'ignore', 'pipe']})
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    child.kill('SIGKILL')
  }, opts.timeoutMs ?? DEFAULT_VM_TIMEOUT_MS)
  let stopTimer: NodeJS.Timeout | undefined
  const poll = opts.stopOn
    ? setInterval(() => {
        if (stopTimer || !existsSync(opts.consoleFile)) return
        if (opts.stopOn!.pattern.test(readFileSync(opts.consoleFile, 'latin1')))
          stopTimer = setTimeout(() => child.kill('SIGKILL'), opts.stopOn!.afterMs)
      }, 250)
    : undefined
  const exitCode = await new Promise<number | null>((res, rej) => {
    child.on('error', rej)
    child.on('close', (code) => res(code))
  }).finally(() => {
    clearTimeout(timer)
    if (poll) clearInterval(poll)
    if (stopTimer) clearTimeout(stopTimer)
  })
  rmSync(vars, {force: true})
  const seconds = Number(process.hrtime.bigint() - start) / 1e9
  let text = existsSync(opts.consoleFile) ? readFileSync(opts.consoleFile, 'latin1') : ''
  if (stderr.trim()) text += `\n[qemu stderr] ${stderr.trim()}\n`
  return {console: text, exitCode, timedOut, seconds}
}

/** The `CFSBOOT-TEST key=value` lines the test rootfs's init prints, as a map (last wins). */
export function testLines(consoleText: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of consoleText.split(/\r?\n/)) {
    const i = line.indexOf('CFSBOOT-TEST ')
    if (i < 0) continue
    // `key=value` pairs; a bare word (`done`) is a key with an empty value.
    for (const m of line.slice(i + 13).matchAll(/([a-z0-9-]+)(?:=(\S*))?/g)) out.set(m[1]!, m[2] ?? '')
  }
  return out
}
