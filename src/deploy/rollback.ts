// `cfsboot rollback`: the previous deployment becomes the next boot's default; again goes back.
// One atomic write: the rollback deployment's entry gets the next generation (a BLS entry is
// rewritten, a UKI renamed). Failed deployments (no tries left) are never the rollback target;
// `cfsboot deploy` of a failed one makes it the default again on purpose.

import {CfsError} from '../errors.js'
import {Config} from './config.js'
import {makeDefault, nextGeneration, readEntries} from './entries.js'
import {Paths} from './paths.js'
import {withLockedView} from './view.js'

export interface RollbackResult {
  /** The deployment that now boots next. */
  digest: string
  /** The one that was the default before. */
  previous: string
  generation: number
  /** The target's entry file after the switch. */
  entry: string
}

export async function rollback(opts: {
  paths: Paths
  config: Config
  lockTimeout?: number
}): Promise<RollbackResult> {
  return withLockedView(opts, async (view) => {
    const current = view.deployments.find((d) => d.default)
    const target = view.deployments.find((d) => d.rollback)
    if (!current || !target?.entry) {
      throw new CfsError('ENOROLLBACK', 'there is no other deployment to roll back to')
    }
    const {entries} = await readEntries(opts.paths.entries)
    const generation = nextGeneration(entries)
    // The target's counter goes too: the administrator chose it (also when its tries ran out).
    const updated = await makeDefault(opts.paths.entries, entries, target.entry, generation)
    return {
      digest: target.deployment.digest,
      previous: current.deployment.digest,
      generation,
      entry: updated.file,
    }
  })
}
