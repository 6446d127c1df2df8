// `cfsboot fsck [--repair]`: verify a sysroot end to end.
//
// Damage (exit code 6): an object whose content no longer has its digest; a kept image missing
// or with the wrong digest; an object a deployment needs missing; a deployment without kernel
// files; a boot entry whose deployment is gone; unreadable metadata.
// Notes (not damage): unreferenced objects, images and kernels, deployments without an entry,
// staging leftovers — what an interrupted command leaves behind, for gc to remove.
// --repair removes what is damaged and can be re-fetched (corrupt objects, dangling entries).

import {readdir, rm} from 'node:fs/promises'
import {join} from 'node:path'

import {ObjectStore} from '../store/objects.js'
import {acquireLock, Lock} from '../system/lock.js'
import {objectPath} from '../tree/node.js'
import {exists} from '../util/fs.js'
import {DigestPool} from '../verity/pool.js'
import {Config} from './config.js'
import {removeEntry} from './entries.js'
import {loadImage, objectRefs} from '../image/load.js'
import {imagePath, Paths, requireSysroot} from './paths.js'
import {viewSysroot} from './view.js'

export interface FsckProblem {
  kind: 'object' | 'image' | 'deployment' | 'entry' | 'kernel'
  path: string
  problem: string
  repaired: boolean
}

export interface FsckResult {
  ok: boolean
  objects: {checked: number; corrupt: number}
  deployments: number
  damage: FsckProblem[]
  notes: string[]
}

export async function fsck(opts: {
  paths: Paths
  config: Config
  repair?: boolean
  lockTimeout?: number
  onProgress?: (done: number, total: number) => void
}): Promise<FsckResult> {
  const {paths} = opts
  const damage: FsckProblem[] = []
  const notes: string[] = []
  await requireSysroot(paths)
  // Always under the lock: a deploy or gc running meanwhile would make objects look missing
  // (listed before a deploy added them, or deleted by gc after the deployments were read).
  const lock: Lock = await acquireLock(
    paths.lock,
    opts.lockTimeout !== undefined ? {timeout: opts.lockTimeout} : {},
  )
  try {
    // Every object's digest, on all cores.
    const store = new ObjectStore(paths.objects)
    const digests: Buffer[] = []
    for await (const d of store.list()) digests.push(d)
    const pool = new DigestPool()
    let actual: Buffer[]
    try {
      actual = await pool.digestFiles(
        digests.map((d) => store.path(d)),
        (done) => opts.onProgress?.(done, digests.length),
      )
    } finally {
      await pool.close()
    }
    const present = new Set<string>()
    let corrupt = 0
    for (let i = 0; i < digests.length; i++) {
      const path = objectPath(digests[i]!)
      if (actual[i]!.equals(digests[i]!)) {
        present.add(path)
        continue
      }
      corrupt++
      if (opts.repair) await rm(store.path(digests[i]!), {force: true})
      damage.push({
        kind: 'object',
        path,
        problem: `content has digest ${actual[i]!.toString('hex')}`,
        repaired: !!opts.repair,
      })
    }

    const view = await viewSysroot(paths, opts.config)
    const referenced = new Set<string>()
    const liveImages = new Set<string>()
    for (const v of view.deployments) {
      const d = v.deployment
      liveImages.add(d.digest)
      const file = imagePath(paths, d.digest)
      if (!v.entry)
        notes.push(
          `deployment ${d.digest.slice(0, 12)} has no boot entry (an interrupted deploy; gc removes it)`,
        )
      try {
        const img = await loadImage(file)
        if (img.digest !== d.digest) {
          damage.push({kind: 'image', path: file, problem: `has digest ${img.digest}`, repaired: false})
          continue
        }
        const missing = objectRefs(img.root).filter((r) => {
          referenced.add(r.path)
          return !present.has(r.path)
        })
        if (missing.length) {
          damage.push({
            kind: 'deployment',
            path: d.digest,
            problem: `${missing.length} object(s) missing or corrupt, first ${missing[0]!.path}`,
            repaired: false,
          })
        }
      } catch (err) {
        damage.push({
          kind: 'image',
          path: file,
          problem: (err as Error).message.split('\n')[0]!,
          repaired: false,
        })
      }
      for (const f of ['vmlinuz', 'initramfs.img']) {
        const p = join(paths.bootDir, d.kernel.dir, f)
        if (!(await exists(p))) damage.push({kind: 'kernel', path: p, problem: 'missing', repaired: false})
      }
    }
    for (const e of view.danglingEntries) {
      if (opts.repair) await removeEntry(paths.entries, e)
      damage.push({
        kind: 'entry',
        path: join(paths.entries, e.file),
        problem: 'its deployment is missing',
        repaired: !!opts.repair,
      })
    }
    for (const name of view.brokenDeployments) {
      damage.push({
        kind: 'deployment',
        path: name,
        problem: 'deployment.json missing or unreadable',
        repaired: false,
      })
    }
    for (const e of view.staleEntries)
      notes.push(`entry ${e.file} is an older duplicate of its deployment's entry (gc removes it)`)
    for (const name of view.invalidEntries) notes.push(`entry ${name} is not a valid cfsboot entry (ignored)`)

    const unreferenced = [...present].filter((p) => !referenced.has(p)).length
    if (unreferenced) notes.push(`${unreferenced} object(s) no deployment references (gc removes them)`)
    for (const name of await readdir(paths.images).catch(() => [] as string[])) {
      if (!liveImages.has(name))
        notes.push(`image ${name.slice(0, 12)} belongs to no deployment (gc removes it)`)
    }
    if ((await readdir(paths.staging).catch(() => [])).length)
      notes.push('staging/ holds leftovers of an interrupted command (gc removes them)')

    return {
      ok: damage.every((d) => d.repaired),
      objects: {checked: digests.length, corrupt},
      deployments: view.deployments.length,
      damage,
      notes,
    }
  } finally {
    lock.release()
  }
}
