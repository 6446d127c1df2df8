// `cfsboot upgrade`: pull from the configured remote and channel ([remote] in cfsboot.conf), or
// with --from-downloaded deploy what an earlier `--download-only` staged, without the network.

import {readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {DamageError, InvalidInputError} from '../errors.js'
import {exists} from '../util/fs.js'
import {requireSysroot} from '../deploy/paths.js'
import {downloadDir, listDownloads} from './downloads.js'
import {keyId, loadPublicKey, verifyRelease} from './index.js'
import {deployDownload, pull, PullOptions, PullResult} from './pull.js'

export type UpgradeOptions = Omit<PullOptions, 'source' | 'channel'> & {
  source?: string
  channel?: string
  fromDownloaded?: boolean
}

export async function upgrade(opts: UpgradeOptions): Promise<PullResult> {
  if (opts.fromDownloaded) return fromDownloaded(opts)
  const source = opts.source ?? opts.config.remote.url
  if (!source) throw new InvalidInputError('no remote: set [remote] url in cfsboot.conf')
  return pull({...opts, source, channel: opts.channel ?? opts.config.remote.channel})
}

async function fromDownloaded(opts: UpgradeOptions): Promise<PullResult> {
  await requireSysroot(opts.paths)
  const complete: string[] = []
  for (const d of await listDownloads(opts.paths))
    if (await exists(join(downloadDir(opts.paths, d), 'complete'))) complete.push(d)
  if (complete.length !== 1)
    throw new DamageError(
      complete.length
        ? `${complete.length} complete downloads; expected one`
        : 'no complete download (run upgrade --download-only first)',
    )
  const digest = complete[0]!
  // Verified again: the staged index is what the deploy trusts.
  const keys = await Promise.all((opts.trustedKeys ?? opts.config.remote.trustedKeys).map(loadPublicKey))
  const release = verifyRelease(await readFile(join(downloadDir(opts.paths, digest), 'release.json')), keys)
  const deployed = await deployDownload(opts, digest)
  return {
    source: downloadDir(opts.paths, digest),
    channel: release.channel,
    mode: 'deploy',
    digest,
    created: release.created,
    keyId: release.keyId || keyId(keys[0]!),
    current: null,
    updateAvailable: true,
    objects: {
      referenced: deployed.objects.referenced,
      present: deployed.objects.present,
      missing: 0,
      bytesMissing: 0,
      downloaded: 0,
      bytesDownloaded: 0,
      bytesResumed: 0,
    },
    transfer: {requests: 0, bytes: 0},
    deploy: deployed,
  }
}
