// Human output shared by pull and upgrade.
import {PullResult} from '../remote/pull.js'

export function pullLines(r: PullResult): string[] {
  const o = r.objects
  const lines: string[] = []
  if (r.mode === 'check') {
    lines.push(
      r.updateAvailable
        ? `update available: ${r.digest} (${r.channel}, ${r.created}); ${o.missing} object(s), ${o.bytesMissing} bytes to download`
        : `up to date: ${r.digest} (${r.channel})`,
    )
    return lines
  }
  if (!r.updateAvailable && !r.deploy) return [`up to date: ${r.digest} (${r.channel})`]
  lines.push(
    `${r.digest}: ${o.downloaded} object(s) downloaded (${o.bytesDownloaded} bytes${o.bytesResumed ? `, ${o.bytesResumed} resumed` : ''}), ${o.present} already present; ${r.transfer.requests} request(s), ${r.transfer.bytes} bytes`,
  )
  if (r.deploy)
    lines.push(`deployed ${r.deploy.digest} (generation ${r.deploy.generation}, entry ${r.deploy.entry})`)
  else if (r.mode === 'download') lines.push('downloaded; deploy it with: cfsboot upgrade --from-downloaded')
  return lines
}
