// `cfsboot pin|unpin N`: a pinned deployment is kept by gc whatever its age.

import {InvalidInputError} from '../errors.js'
import {acquireLock} from '../system/lock.js'
import {Config} from './config.js'
import {writeDeployment} from './deployments.js'
import {deploymentDir, Paths, requireSysroot} from './paths.js'
import {selectDeployment, viewSysroot} from './view.js'

export async function setPinned(opts: {
  paths: Paths
  config: Config
  which: string
  pinned: boolean
  lockTimeout?: number
}): Promise<{digest: string; pinned: boolean; changed: boolean}> {
  await requireSysroot(opts.paths)
  const lock = await acquireLock(
    opts.paths.lock,
    opts.lockTimeout !== undefined ? {timeout: opts.lockTimeout} : {},
  )
  try {
    const view = await viewSysroot(opts.paths, opts.config)
    const sel = selectDeployment(view, opts.which)
    if (!sel) throw new InvalidInputError(`no deployment ${JSON.stringify(opts.which)} (see cfsboot status)`)
    const d = sel.deployment
    if (d.pinned === opts.pinned) return {digest: d.digest, pinned: d.pinned, changed: false}
    await writeDeployment(deploymentDir(opts.paths, d.digest), {...d, pinned: opts.pinned})
    return {digest: d.digest, pinned: opts.pinned, changed: true}
  } finally {
    lock.release()
  }
}
