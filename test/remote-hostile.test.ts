// A hostile or broken server (a node:http server in this process, on 127.0.0.1, serving a real
// published repository with one thing wrong): wrong bytes, a truncated body, a 500, a stalled
// connection, extra bytes, an index signed by another key, a signed index naming `../` paths or
// absurd sizes, an image naming an object the index does not list, a huge index. Each: one
// clear error line, the documented exit code, no hang, deployments unchanged and the store
// holding only verified objects.
import assert from 'node:assert/strict'
import {cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {createServer, IncomingMessage, Server, ServerResponse} from 'node:http'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {loadPrivateKey, localPayload, Release, signRelease} from '../src/remote/index.js'
import {
  cli,
  cliJson,
  diffSnapshots,
  makeSysroot,
  notOneClearError,
  snapshot,
  Sysroot,
} from './helpers/sysroot.js'
import {
  deviceConfig,
  keypair,
  publishOk,
  storeProblems,
  twoVersions,
  TwoVersions,
} from './helpers/releases.js'
import {PullResult} from '../src/remote/pull.js'
import {sysrootPaths} from '../src/deploy/paths.js'

const work = mkdtempSync(join(tmpdir(), 'cfsboot-remote-hostile-'))
after(() => rmSync(work, {recursive: true, force: true}))

type Mode = (req: IncomingMessage, res: ServerResponse, file: Buffer | null) => boolean

let rel: TwoVersions
let keys: {key: string; pub: string}
let other: {key: string; pub: string}
const repo = join(work, 'repo')
let server: Server
let url: string
let mode: Mode | null = null
const requests: string[] = []
let template: Sysroot

/** The first object of v2 that v1 lacks: the one the hostile modes tamper with. */
let target: string

before(async () => {
  rel = twoVersions(join(work, 'images'), {count: 40, changed: 4, size: 20000})
  keys = await keypair(join(work, 'release'))
  other = await keypair(join(work, 'other'))
  await publishOk(['--objects', rel.v1.objects, '--to', repo, '--key', keys.key, rel.v1.image])
  // The largest new object, so partial answers are really partial.
  target = [...rel.newInV2].sort(
    (a, b) => statSync(join(rel.v2.objects, b)).size - statSync(join(rel.v2.objects, a)).size,
  )[0]!
  server = createServer((req, res) => {
    requests.push(req.url ?? '')
    let file: Buffer | null = null
    try {
      file = readFileSync(join(repo, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)))
    } catch {
      file = null
    }
    if (mode && mode(req, res, file)) return
    if (!file) {
      res.writeHead(404).end()
      return
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    if (range) {
      const start = Number(range[1])
      res.writeHead(206, {
        'content-range': `bytes ${start}-${file.length - 1}/${file.length}`,
        'content-length': file.length - start,
      })
      res.end(file.subarray(start))
    } else {
      res.writeHead(200, {'content-length': file.length})
      res.end(file)
    }
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  url = `http://127.0.0.1:${(server.address() as {port: number}).port}`
  template = await makeSysroot({parent: work})
  writeFileSync(template.config, deviceConfig(url, keys.pub, 'timeout = 2\n'))
  const r = await cliJson<PullResult>(template, ['upgrade'])
  assert.equal(r.r.code, 0, r.r.stderr)
  await publishOk(['--objects', rel.v2.objects, '--to', repo, '--key', keys.key, rel.v2.image])
})
after(() => {
  server?.closeAllConnections()
  server?.close()
})

/** Sysroot state that must not change (objects may gain verified ones; downloads may stay). */
function state(s: Sysroot): Map<string, string> {
  const snap = snapshot(s.sysroot)
  for (const k of [...snap.keys()])
    if (k.startsWith('composefs/objects/') || k.startsWith('composefs/downloads')) snap.delete(k)
  return snap
}

async function refused(
  m: Mode | null,
  exit: number,
  opts: {config?: string; noObjects?: boolean} = {},
): Promise<void> {
  const dir = mkdtempSync(join(work, 'dev-'))
  rmSync(dir, {recursive: true})
  cpSync(template.dir, dir, {recursive: true})
  const s: Sysroot = {
    ...template,
    dir,
    sysroot: join(dir, 'sysroot'),
    config: join(dir, 'cfsboot.conf'),
    runDir: join(dir, 'run'),
    paths: sysrootPaths(join(dir, 'sysroot')),
  }
  if (opts.config) writeFileSync(s.config, opts.config)
  const before = state(s)
  mode = m
  requests.length = 0
  const t0 = Date.now()
  let r
  try {
    r = await cli(s, ['upgrade'])
  } finally {
    mode = null
  }
  assert.equal(notOneClearError(r, exit), '', r.stdout)
  assert.ok(Date.now() - t0 < 20_000, 'no hang')
  assert.deepEqual(diffSnapshots(before, state(s)), [])
  assert.deepEqual(storeProblems(s.paths.objects), [])
  if (opts.noObjects)
    assert.deepEqual(
      requests.filter((u) => u.startsWith('/objects/')),
      [],
      'no object was requested',
    )
}

const isTarget = (req: IncomingMessage): boolean => req.url === `/objects/${target}`

/** A signed index (by the trusted key) with its payload changed by `edit`. */
async function forged(edit: (r: Release & Record<string, unknown>) => void, key = keys.key): Promise<Buffer> {
  const real = localPayload(readFileSync(join(repo, 'releases', 'stable.json'))) as Release &
    Record<string, unknown>
  edit(real)
  return signRelease(real, await loadPrivateKey(key))
}
const serveIndex =
  (body: Buffer): Mode =>
  (req, res) => {
    if (req.url !== '/releases/stable.json') return false
    res.writeHead(200, {'content-length': body.length}).end(body)
    return true
  }

describe('hostile and broken servers', () => {
  test('wrong bytes for an object: EDIGEST (exit 4), nothing of it kept', () =>
    refused((req, res, file) => {
      if (!isTarget(req)) return false
      const wrong = Buffer.from(file!)
      wrong[0] = wrong[0]! ^ 0xff
      res.writeHead(200, {'content-length': wrong.length}).end(wrong)
      return true
    }, 4))

  test('a truncated body: exit 1', () =>
    refused((req, res, file) => {
      if (!isTarget(req)) return false
      res.writeHead(200, {'content-length': file!.length})
      res.write(file!.subarray(0, 1000), () => res.destroy())
      return true
    }, 1))

  test('a 500: exit 1', () =>
    refused((req, res) => {
      if (!isTarget(req)) return false
      res.writeHead(500).end('internal error')
      return true
    }, 1))

  test('a stalled connection: exit 1 after the configured timeout', () =>
    refused((req, res, file) => {
      if (!isTarget(req)) return false
      res.writeHead(200, {'content-length': file!.length})
      res.write(file!.subarray(0, 100)) // and then nothing
      return true
    }, 1))

  test('a server that sends more bytes than the index lists: exit 1', () =>
    refused((req, res, file) => {
      if (!isTarget(req)) return false
      const more = Buffer.concat([file!, Buffer.alloc(5000)])
      res.writeHead(200, {'content-length': more.length}).end(more)
      return true
    }, 1))

  test('an index signed by another key: exit 4, before any object', async () =>
    refused(serveIndex(await forged(() => {}, other.key)), 4, {noObjects: true}))

  test('an unsigned index: exit 4', async () => {
    const env = JSON.parse(readFileSync(join(repo, 'releases', 'stable.json'), 'utf8')) as Record<
      string,
      unknown
    >
    env['signatures'] = []
    await refused(serveIndex(Buffer.from(JSON.stringify(env))), 4, {noObjects: true})
  })

  test('a tampered payload under a valid signature: exit 4', async () => {
    const env = JSON.parse(readFileSync(join(repo, 'releases', 'stable.json'), 'utf8')) as {payload: string}
    const p = Buffer.from(env.payload, 'base64')
    p[p.length - 3] = p[p.length - 3]! ^ 1
    env.payload = p.toString('base64')
    await refused(serveIndex(Buffer.from(JSON.stringify(env))), 4, {noObjects: true})
  })

  test('a signed index naming ../ paths: exit 3, before any object', async () =>
    refused(
      serveIndex(
        await forged((r) => {
          r.objects[0]!.digest = '../../../../etc/passwd'
        }),
      ),
      3,
      {noObjects: true},
    ))

  test('a signed index with absurd sizes: exit 3, before any object', async () =>
    refused(
      serveIndex(
        await forged((r) => {
          r.objects[0]!.size = 2 ** 52
        }),
      ),
      3,
      {noObjects: true},
    ))

  test('an image naming an object the signed index does not list: exit 4, before any object', async () =>
    refused(
      serveIndex(
        await forged((r) => {
          r.objects = r.objects.filter((o) => `${o.digest.slice(0, 2)}/${o.digest.slice(2)}` !== target)
        }),
      ),
      4,
      {noObjects: true},
    ))

  test('a huge index: refused from its declared length, exit 1', () =>
    refused((req, res) => {
      if (req.url !== '/releases/stable.json') return false
      res.writeHead(200, {'content-length': String(10 * 2 ** 30)})
      res.write('{')
      return true
    }, 1))

  test('the index of another channel: exit 4', async () =>
    refused(
      serveIndex(
        await forged((r) => {
          r.channel = 'testing'
        }),
      ),
      4,
    ))

  test('after all that, the same device upgrades cleanly', async () => {
    const r = await cliJson<PullResult>(template, ['upgrade'])
    assert.equal(r.r.code, 0, r.r.stderr)
    assert.equal(r.json.digest, rel.v2.digest)
  })
})
