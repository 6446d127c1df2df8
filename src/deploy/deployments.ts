// deployment.json: what a deployment is, written once when it is staged (and again when it is
// pinned or unpinned, atomically). The schema is published in docs/schemas/deployment.json.

import {readdir, readFile} from 'node:fs/promises'
import {join} from 'node:path'

import {writeFileAtomic} from '../util/fs.js'
import {deploymentDir, isDigest, Paths} from './paths.js'

export interface Deployment {
  apiVersion: 'cfsboot/v1'
  kind: 'Deployment'
  /** fs-verity digest of the image (hex); also the deployment's directory name. */
  digest: string
  /** When it was deployed (ISO 8601). */
  created: string
  /** The image's os-release (NAME, VERSION_ID, PRETTY_NAME, …). */
  osRelease: Record<string, string>
  /** Kernel version and its directory relative to the boot dir (e.g. "cfsboot/6.12.0-1a2b3c4d5e6f"). */
  kernel: {version: string; dir: string}
  pinned: boolean
  /** Objects the image references and their total size. */
  objects: {count: number; bytes: number}
  /** The /etc merge made when it was deployed. */
  etc: {mergedFrom: string | null; carried: number; conflicts: string[]}
}

export const DEPLOYMENT_FILE = 'deployment.json'

export async function readDeployment(dir: string): Promise<Deployment> {
  return JSON.parse(await readFile(join(dir, DEPLOYMENT_FILE), 'utf8')) as Deployment
}

export async function writeDeployment(dir: string, d: Deployment): Promise<void> {
  await writeFileAtomic(join(dir, DEPLOYMENT_FILE), Buffer.from(JSON.stringify(d, null, 2) + '\n'))
}

/** All deployments on the sysroot; directories whose metadata cannot be read are listed apart. */
export async function listDeployments(p: Paths): Promise<{deployments: Deployment[]; broken: string[]}> {
  let names: string[]
  try {
    names = await readdir(p.deployments)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {deployments: [], broken: []}
    throw err
  }
  const deployments: Deployment[] = []
  const broken: string[] = []
  for (const name of names.sort()) {
    if (!isDigest(name)) continue
    try {
      const d = await readDeployment(deploymentDir(p, name))
      if (d.digest !== name) throw new Error('digest does not match its directory')
      deployments.push(d)
    } catch {
      broken.push(name)
    }
  }
  return {deployments, broken}
}
