// Human output of `cfsboot install …` (the --json output is the InstallResult itself).

import {formatBytes} from './partition.js'
import {InstallResult} from './result.js'
import {SEAL_PENDING} from '../boot/contract.js'

export function formatInstall(r: InstallResult): string {
  const lines = [`installed ${r.digest} on ${r.target.path}`]
  for (const p of r.partitions ?? []) {
    lines.push(`  partition ${p.number} ${p.name}: ${formatBytes(p.size)} ${p.filesystem} "${p.label}"`)
  }
  if (r.sysroot) lines.push(`  physical root ${r.sysroot}, boot files in ${r.bootDir}`)
  lines.push(
    `  boot entry ${r.deployment.entry} (generation ${r.deployment.generation}), kernel ${r.deployment.kernel.version}`,
  )
  lines.push(
    r.verity.state === 'seal-pending'
      ? `  fs-verity: sealed on first boot (${SEAL_PENDING}); ${r.verity.reason}`
      : `  fs-verity enabled on ${r.verity.files} file(s)${r.verity.state === 'presealed' ? ' (metadata written by the installer)' : ''}`,
  )
  if (r.bootLoader) lines.push(`  systemd-boot from ${r.bootLoader.source} (${r.bootLoader.installedBy})`)
  return lines.join('\n')
}
