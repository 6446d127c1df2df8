// `cfsboot pin|unpin N`: a pinned deployment is kept by gc whatever its age.

import {Config} from './config.js'
import {writeDeployment} from './deployments.js'
import {deploymentDir, Paths} from './paths.js'
import {requireDeployment, withLockedView} from './view.js'

export async function setPinned(opts: {
  paths: Paths
  config: Config
  which: string
  pinned: boolean
  lockTimeout?: number
}): Promise<{digest: string; pinned: boolean; changed: boolean}> {
  return withLockedView(opts, async (view) => {
    const sel = requireDeployment(view, opts.which)
    const d = sel.deployment
    if (d.pinned === opts.pinned) return {digest: d.digest, pinned: d.pinned, changed: false}
    await writeDeployment(deploymentDir(opts.paths, d.digest), {...d, pinned: opts.pinned})
    return {digest: d.digest, pinned: opts.pinned, changed: true}
  })
}
