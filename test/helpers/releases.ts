// Releases for the remote tests: two versions of a small image sharing most objects, signing
// keys, a published repository, and a device's cfsboot.conf pointing at it.
import {spawn} from 'node:child_process'
import {mkdirSync, readdirSync, readFileSync, statSync} from 'node:fs'
import {join} from 'node:path'

import {fsverityDigest} from '../../src/verity/merkle.js'
import {makeImage, TestImage} from './images.js'
import {REPO, RUN_JS} from './sysroot.js'

/** A file of `size` bytes whose content is unique to `seed`. */
export const blob = (seed: string, size: number): Buffer => {
  const unit = Buffer.from(`${seed}:`)
  return Buffer.concat(Array.from({length: Math.ceil(size / unit.length)}, () => unit)).subarray(0, size)
}

export interface TwoVersions {
  v1: TestImage
  v2: TestImage
  /** Object paths v2 has and v1 lacks, and their bytes. */
  newInV2: string[]
  newBytes: number
}

/** v1 and v2 with `count` data files each; v2 replaces `changed` of them (plus its initramfs/os-release). */
export function twoVersions(
  dir: string,
  opts: {count?: number; changed?: number; size?: number} = {},
): TwoVersions {
  const count = opts.count ?? 200
  const changed = opts.changed ?? 8
  const size = opts.size ?? 3000
  const shared: Record<string, Buffer> = {}
  for (let i = 0; i < count - changed; i++) shared[`/usr/share/data/f${i}`] = blob(`shared-${i}`, size + i)
  const v1Only: Record<string, Buffer> = {}
  const v2Only: Record<string, Buffer> = {}
  for (let i = 0; i < changed; i++) {
    v1Only[`/usr/share/data/g${i}`] = blob(`v1-${i}`, size + 100 + i)
    v2Only[`/usr/share/data/g${i}`] = blob(`v2-${i}`, size + 100 + i)
  }
  mkdirSync(join(dir, 'v1'), {recursive: true})
  mkdirSync(join(dir, 'v2'), {recursive: true})
  const v1 = makeImage(join(dir, 'v1'), {version: '1', files: {...shared, ...v1Only}})
  const v2 = makeImage(join(dir, 'v2'), {version: '2', files: {...shared, ...v2Only}})
  const inV1 = new Set(v1.objectPaths)
  const newInV2 = [...new Set(v2.objectPaths.filter((p) => !inV1.has(p)))]
  const newBytes = newInV2.reduce((a, p) => a + statSync(join(v2.objects, p)).size, 0)
  return {v1, v2, newInV2, newBytes}
}

/** Runs the CLI without sysroot flags; returns status and output. */
export function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{code: number | null; stdout: string; stderr: string}> {
  // Asynchronous: servers inside the test process (token server, proxy) must keep answering.
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [RUN_JS, ...args], {cwd: REPO, env: {...process.env, ...env}})
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => resolve({code, stdout, stderr}))
  })
}

export async function keypair(prefix: string): Promise<{key: string; pub: string}> {
  const r = await run(['keygen', prefix])
  if (r.code !== 0) throw new Error(r.stderr)
  return {key: `${prefix}.key`, pub: `${prefix}.pub`}
}

export async function publishOk(
  args: string[],
  env: Record<string, string> = {},
): Promise<Record<string, unknown>> {
  const r = await run(['publish', ...args, '--json'], env)
  if (r.code !== 0) throw new Error(`publish failed (${r.code}): ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

/** Objects in a store that are not files with their own digest, and temporaries ([] when clean). */
export function storeProblems(objectsDir: string): string[] {
  const problems: string[] = []
  let fans: string[] = []
  try {
    fans = readdirSync(objectsDir)
  } catch {
    return []
  }
  for (const fan of fans) {
    for (const name of readdirSync(join(objectsDir, fan))) {
      if (!/^[0-9a-f]{62}$/.test(name)) {
        problems.push(`stray ${fan}/${name}`)
        continue
      }
      if (fsverityDigest(readFileSync(join(objectsDir, fan, name))).toString('hex') !== fan + name)
        problems.push(`corrupt ${fan}/${name}`)
    }
  }
  return problems
}

export function deviceConfig(url: string, pub: string, extra = ''): string {
  return `[remote]\nurl = ${url}\nchannel = stable\ntrusted-keys = ${pub}\ntimeout = 10\n${extra}`
}
