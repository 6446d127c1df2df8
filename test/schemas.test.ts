// Every command that has --json publishes a schema in docs/schemas/, and what the commands print
// matches it (the commands not exercised here are validated in their own suites: status, deploy,
// gc, fsck in deploy.test; install in install.test; image info in image-commands.test).
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, readdirSync, readFileSync, statSync} from 'node:fs'
import {join, relative} from 'node:path'
import {test} from 'node:test'

import {makeImage} from './helpers/images.js'
import {cli, cliJson, makeSysroot, REPO, RUN_JS, schemaErrors} from './helpers/sysroot.js'
import {needRoot} from './helpers/tools.js'

/** Command id → schema name; a command that gains --json must be added here (and its schema). */
const SCHEMAS: Record<string, string> = {
  build: 'build',
  deploy: 'deploy',
  digest: 'digest',
  fsck: 'fsck',
  gc: 'gc',
  'image/info': 'image-info',
  'image/objects': 'image-objects',
  initramfs: 'initramfs',
  keygen: 'keygen',
  'install/to-disk': 'install',
  'install/to-filesystem': 'install',
  mount: 'mount',
  pin: 'pin',
  publish: 'publish',
  pull: 'pull',
  rollback: 'rollback',
  status: 'status',
  umount: 'umount',
  undeploy: 'undeploy',
  unpin: 'pin',
  upgrade: 'pull',
}

/** Runs a command that takes no sysroot flags with --json; returns its parsed output. */
function plainJson(args: string[]): Record<string, unknown> {
  const r = spawnSync(process.execPath, [RUN_JS, ...args, '--json'], {cwd: REPO, encoding: 'utf8'})
  assert.equal(r.status, 0, `${args.join(' ')}: ${r.stderr}`)
  return JSON.parse(r.stdout) as Record<string, unknown>
}

function commandFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n)
    return statSync(p).isDirectory() ? commandFiles(p) : n.endsWith('.ts') ? [p] : []
  })
}

test('every command with --json has a published schema', () => {
  const withJson = commandFiles(join(REPO, 'commands'))
    .filter((f) => readFileSync(f, 'utf8').includes('enableJsonFlag = true'))
    .map((f) => relative(join(REPO, 'commands'), f).replace(/\.ts$/, ''))
    .sort()
  assert.deepEqual(withJson, Object.keys(SCHEMAS).sort())
  for (const name of new Set(Object.values(SCHEMAS))) {
    assert.ok(existsSync(join(REPO, 'docs', 'schemas', `${name}.json`)), name)
  }
})

test('build, digest, image objects, pin, unpin, rollback and undeploy print what their schemas say', async () => {
  const s = await makeSysroot()
  const v1 = makeImage(join(s.dir, 'v1'), {version: '1'})
  const v2 = makeImage(join(s.dir, 'v2'), {version: '2', files: {'/usr/share/two': 'two '.repeat(100)}})
  const check = async (schema: string, args: string[]): Promise<Record<string, unknown>> => {
    const {r, json} = await cliJson<Record<string, unknown>>(s, args)
    assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`)
    assert.equal(schemaErrors(schema, json), '', args.join(' '))
    return json
  }
  mkdirSync(join(s.dir, 'out'))
  const plain = (schema: string, args: string[]): Record<string, unknown> => {
    const json = plainJson(args)
    assert.equal(schemaErrors(schema, json), '', args.join(' '))
    return json
  }
  plain('build', ['build', join(REPO, 'examples', 'sample-rootfs'), '-o', join(s.dir, 'out', 'x.cfs')])
  plain('digest', ['digest', v1.image, v2.image])
  const objects = plain('image-objects', ['image', 'objects', v2.image])
  assert.deepEqual(objects.objects, [...v2.objectPaths].sort())
  for (const v of [v1, v2]) assert.equal((await cli(s, ['deploy', v.image, '--objects', v.objects])).code, 0)
  await check('pin', ['pin', '1'])
  await check('pin', ['unpin', '1'])
  await check('rollback', ['rollback'])
  await check('undeploy', ['undeploy', '1'])
})

test('mount and umount print what their schemas say', {skip: needRoot('mounting')}, async (t) => {
  if (!existsSync('/proc/filesystems') || !readFileSync('/proc/filesystems', 'utf8').includes('erofs')) {
    t.skip('this kernel has no EROFS')
    return
  }
  const s = await makeSysroot()
  const v = makeImage(join(s.dir, 'v'), {version: '1'})
  const mnt = join(s.dir, 'mnt')
  mkdirSync(mnt)
  const m = plainJson(['mount', v.image, mnt, '--objects', v.objects, '--digest', v.digest])
  t.after(() => spawnSync('umount', [mnt]))
  assert.equal(schemaErrors('mount', m), '')
  assert.equal(m.digest, v.digest)
  assert.equal(schemaErrors('umount', plainJson(['umount', mnt])), '')
})
