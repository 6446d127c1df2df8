// The small bootable root filesystem the VM tests build images from: busybox as every tool, an
// init script of the test's own, os-release, and the kernel + initramfs where deploy takes them
// (/usr/lib/modules/KVER/). Each test adds what it needs on top (data files, health checks).
import {chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {execFileSync} from 'node:child_process'
import {join} from 'node:path'

import {RUN_JS} from './sysroot.js'
import {BUSYBOX_STATIC, TestKernel} from './vm.js'

/** Runs the CLI and returns its stdout (throws with its stderr on failure). */
export function vmTestCli(args: string[], env: NodeJS.ProcessEnv): string {
  return execFileSync(process.execPath, [RUN_JS, ...args], {
    encoding: 'utf8',
    env: {...process.env, NO_COLOR: '1', ...env},
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 26,
  })
}

export interface RootfsSpec {
  dir: string
  version: string
  /** The /sbin/init script. */
  init: string
  kernel: TestKernel
  initramfs: string
}

/** Writes the rootfs skeleton; returns its /usr/lib for the test's additions. */
export function makeBusyboxRootfs(spec: RootfsSpec): string {
  const {dir, version} = spec
  const bin = join(dir, 'usr', 'bin')
  mkdirSync(bin, {recursive: true})
  copyFileSync(BUSYBOX_STATIC, join(bin, 'busybox'))
  chmodSync(join(bin, 'busybox'), 0o755)
  for (const applet of execFileSync(BUSYBOX_STATIC, ['--list'], {encoding: 'utf8'}).split('\n')) {
    if (applet && applet !== 'busybox') symlinkSync('busybox', join(bin, applet))
  }
  symlinkSync('usr/bin', join(dir, 'bin'))
  mkdirSync(join(dir, 'sbin'))
  writeFileSync(join(dir, 'sbin', 'init'), spec.init, {mode: 0o755})
  // /etc, /var and /sysroot are where the initramfs mounts; proc/sys/dev/run for the kernel.
  for (const d of ['etc', 'var', 'sysroot', 'proc', 'sys', 'dev', 'run', 'tmp']) mkdirSync(join(dir, d))
  const share = join(dir, 'usr', 'share', 'cfsboot-test')
  mkdirSync(share, {recursive: true})
  writeFileSync(join(share, 'version'), `${version}\n`)
  const lib = join(dir, 'usr', 'lib')
  mkdirSync(lib, {recursive: true})
  writeFileSync(
    join(lib, 'os-release'),
    `NAME="cfsboot test"\nID=cfsboot-test\nVERSION_ID=${version}\nPRETTY_NAME="cfsboot test ${version}"\n`,
  )
  const mod = join(lib, 'modules', spec.kernel.kver)
  mkdirSync(mod, {recursive: true})
  copyFileSync(spec.kernel.vmlinuz, join(mod, 'vmlinuz'))
  copyFileSync(spec.initramfs, join(mod, 'initramfs.img'))
  return lib
}
