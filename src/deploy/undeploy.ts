// `cfsboot undeploy N`: remove one deployment (never the booted one). Its entry goes first, so
// the boot loader never sees an entry whose deployment is half gone; its image and objects are
// left to gc, which knows whether other deployments still use them.

import {mkdir, rename, rm, rmdir} from 'node:fs/promises'
import {join} from 'node:path'

import {CfsError} from '../errors.js'
import {fsyncDir} from '../util/fs.js'
import {Config} from './config.js'
import {removeEntry} from './entries.js'
import {deploymentDir, Paths} from './paths.js'
import {requireDeployment, withLockedView} from './view.js'

/** Removes a deployment directory by first moving it out of deployments/ (one atomic step). */
export async function removeDeploymentDir(paths: Paths, digest: string): Promise<void> {
  await mkdir(paths.staging, {recursive: true})
  const trash = join(paths.staging, `removing-${digest}`)
  await rm(trash, {recursive: true, force: true})
  await rename(deploymentDir(paths, digest), trash)
  await fsyncDir(paths.deployments)
  await rm(trash, {recursive: true, force: true})
  await rmdir(paths.staging).catch(() => undefined) // unless something else is left there
}

export async function undeploy(opts: {
  paths: Paths
  config: Config
  which: string
  lockTimeout?: number
}): Promise<{digest: string}> {
  return withLockedView(opts, async (view) => {
    const sel = requireDeployment(view, opts.which)
    if (sel.booted)
      throw new CfsError(
        'EBOOTED',
        `refusing to undeploy the booted deployment ${sel.deployment.digest.slice(0, 12)}`,
      )
    if (sel.default && !view.deployments.some((d) => d !== sel && d.entry && !d.failed)) {
      throw new CfsError('ELAST', 'refusing to undeploy the only bootable deployment')
    }
    if (sel.entry) {
      await removeEntry(opts.paths.entries, sel.entry)
      await fsyncDir(opts.paths.entries)
    }
    await removeDeploymentDir(opts.paths, sel.deployment.digest)
    return {digest: sel.deployment.digest}
  })
}
