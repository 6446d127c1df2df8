// The checks of `cfsboot prepare`: pure judgements over the facts inspect.ts gathered. Each says
// whether the tree is ready in one respect and, when not, what makes it so: `cfsboot prepare
// --fix` (the parts cfsboot owns) or a distribution package to install (named for Debian).

import {DEVICE_TOOLS, TreeFacts} from './inspect.js'

/** cfsboot's engines field: the node a device needs. */
export const NODE_MIN: readonly [number, number] = [20, 19]

export type CheckId =
  'kernel' | 'initramfs' | 'directories' | 'node' | 'tools' | 'tmp' | 'health' | 'cfsboot' | 'init'

export interface PrepareCheck {
  id: CheckId
  ok: boolean
  /** An error makes the tree unready (exit 3); a warning is worth knowing. */
  level: 'error' | 'warning'
  detail: string
  /** What makes it ok: `fix` (prepare --fix does it), `install` (the packages below), or null. */
  remedy: 'fix' | 'install' | null
  packages: string[]
}

export function nodeVersionOk(version: string | null): boolean {
  const m = /^v?(\d+)\.(\d+)\./.exec(version ?? '')
  if (!m) return false
  const [major, minor] = [Number(m[1]), Number(m[2])]
  return major > NODE_MIN[0] || (major === NODE_MIN[0] && minor >= NODE_MIN[1])
}

function ok(id: CheckId, detail: string, level: 'error' | 'warning' = 'error'): PrepareCheck {
  return {id, ok: true, level, detail, remedy: null, packages: []}
}
function fixable(id: CheckId, detail: string): PrepareCheck {
  return {id, ok: false, level: 'error', detail, remedy: 'fix', packages: []}
}
function install(
  id: CheckId,
  detail: string,
  packages: string[],
  level: 'error' | 'warning' = 'error',
): PrepareCheck {
  return {id, ok: false, level, detail, remedy: 'install', packages}
}

function kernelCheck(f: TreeFacts): PrepareCheck {
  const k = f.kernel
  if (!k)
    return install('kernel', 'no kernel: expected /usr/lib/modules/KVER/vmlinuz (or /boot/vmlinuz-KVER)', [
      'linux-image-amd64',
    ])
  if (!k.vmlinuz) return fixable('kernel', `kernel ${k.kver} is in ${k.bootVmlinuz}, not in ${k.dir}/vmlinuz`)
  return ok('kernel', `${k.dir}/vmlinuz`)
}

function initramfsCheck(f: TreeFacts, flavour: 'shell' | 'systemd' | undefined): PrepareCheck {
  const k = f.kernel
  if (!k) return install('initramfs', 'no kernel to build an initramfs for', ['linux-image-amd64'])
  if (!f.initramfs) return fixable('initramfs', `no ${k.dir}/initramfs.img`)
  if (!f.initramfs.cfsboot)
    return fixable('initramfs', `${k.dir}/initramfs.img has no cfsboot module (it cannot mount / by digest)`)
  if (flavour && f.initramfs.flavour !== flavour)
    return fixable(
      'initramfs',
      `${k.dir}/initramfs.img is the ${f.initramfs.flavour} flavour, not ${flavour}`,
    )
  return ok('initramfs', `${k.dir}/initramfs.img with the cfsboot module (${f.initramfs.flavour} flavour)`)
}

function nodeCheck(f: TreeFacts): PrepareCheck {
  const want = `node >= ${NODE_MIN.join('.')}`
  if (!f.node) return fixable('node', `no node on PATH (cfsboot needs ${want})`)
  if (!nodeVersionOk(f.node.version))
    return fixable('node', `${f.node.path} is ${f.node.version ?? 'not runnable'} (cfsboot needs ${want})`)
  return ok('node', `${f.node.path} ${f.node.version}`)
}

function toolsCheck(f: TreeFacts): PrepareCheck {
  if (f.missingTools.length === 0) return ok('tools', Object.keys(DEVICE_TOOLS).join(', '))
  const packages = [...new Set(f.missingTools.map((t) => DEVICE_TOOLS[t]!))].sort()
  return install('tools', `not on PATH: ${f.missingTools.join(', ')}`, packages)
}

function tmpCheck(f: TreeFacts): PrepareCheck {
  if (f.tmp === 'tmp.mount') return ok('tmp', 'tmp.mount is enabled (tmpfs on /tmp)')
  if (f.tmp === 'fstab') return ok('tmp', '/etc/fstab mounts /tmp')
  return fixable('tmp', '/tmp would be on the read-only composefs root (no tmp.mount, no fstab line)')
}

function healthCheck(f: TreeFacts): PrepareCheck {
  const h = f.health
  if (!h.program) return fixable('health', 'no health program (/usr/lib/cfsboot/cfsboot-health)')
  if (!f.systemd)
    return ok('health', 'health program installed; no systemd: start it from the init (docs/health.md)')
  if (!h.unit) return fixable('health', 'no cfsboot-health.service')
  if (!h.enabled) return fixable('health', 'cfsboot-health.service is not enabled')
  return ok('health', 'cfsboot-health.service enabled')
}

function cfsbootCheck(f: TreeFacts): PrepareCheck {
  const c = f.cfsboot
  if (!c.version) return fixable('cfsboot', 'cfsboot is not installed in /usr/lib/cfsboot')
  if (c.version !== c.ours)
    return fixable('cfsboot', `cfsboot ${c.version} in /usr/lib/cfsboot; this cfsboot is ${c.ours}`)
  if (!c.dependencies) return fixable('cfsboot', '/usr/lib/cfsboot has no node_modules')
  if (!c.wrapper) return fixable('cfsboot', 'no /usr/bin/cfsboot')
  return ok('cfsboot', `cfsboot ${c.version} in /usr/lib/cfsboot`)
}

function initCheck(f: TreeFacts): PrepareCheck {
  if (f.systemd) return ok('init', 'systemd', 'warning')
  if (f.init) return ok('init', '/sbin/init (not systemd)', 'warning')
  return install('init', 'no /sbin/init', ['systemd-sysv'], 'warning')
}

/** `flavour`: the initramfs flavour asked for (any when undefined). */
export function runChecks(f: TreeFacts, flavour?: 'shell' | 'systemd'): PrepareCheck[] {
  const dirs: PrepareCheck =
    f.missingDirs.length === 0
      ? ok('directories', '/etc, /var, /sysroot')
      : fixable('directories', `missing: ${f.missingDirs.join(', ')}`)
  return [
    kernelCheck(f),
    initramfsCheck(f, flavour),
    dirs,
    nodeCheck(f),
    toolsCheck(f),
    tmpCheck(f),
    healthCheck(f),
    cfsbootCheck(f),
    initCheck(f),
  ]
}
