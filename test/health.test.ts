// templates/health/cfsboot-health, the on-device marking program (POSIX sh), run on this machine
// in a temp dir standing in for the device: health.d directories, a fake efivarfs, an ESP
// directory, /run/cfsboot/booted.json and /var/lib/cfsboot/health, all through its environment
// variables. The VM test (test/trust-vm.test.ts) runs the same program on a booted system.
import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, test} from 'node:test'

import {readHealthRecord} from '../src/boot/health.js'
import {REPO} from './helpers/sysroot.js'

const PROGRAM = join(REPO, 'templates', 'health', 'cfsboot-health')
const LOADER_GUID = '4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'
const DIGEST = '0123456789abcdef'.repeat(4)
const D16 = DIGEST.slice(0, 16)

const work = mkdtempSync(join(tmpdir(), 'cfsboot-health-test-'))
after(() => rmSync(work, {recursive: true, force: true}))

interface Device {
  root: string
  usr: string
  etc: string
  efivars: string
  esp: string
  run: string
  varDir: string
  records: string
  conf: string
  env: NodeJS.ProcessEnv
}

let n = 0
function device(conf = '[health]\ntimeout = 5\non-failure = reboot\n'): Device {
  const root = join(work, `dev${++n}`)
  const d: Device = {
    root,
    usr: join(root, 'usr/lib/cfsboot/health.d'),
    etc: join(root, 'etc/cfsboot/health.d'),
    efivars: join(root, 'sys/firmware/efi/efivars'),
    esp: join(root, 'boot'),
    run: join(root, 'run/cfsboot'),
    varDir: join(root, 'var'),
    records: join(root, 'var/lib/cfsboot/health'),
    conf: join(root, 'etc/cfsboot/cfsboot.conf'),
    env: {},
  }
  for (const dir of [d.usr, d.etc, d.efivars, join(d.esp, 'loader/entries'), join(d.esp, 'EFI/Linux'), d.run])
    mkdirSync(dir, {recursive: true})
  writeFileSync(d.conf, conf)
  writeFileSync(join(d.run, 'booted.json'), JSON.stringify({digest: DIGEST, verity: 'require'}))
  d.env = {
    PATH: process.env.PATH,
    CFSBOOT_CONFIG: d.conf,
    CFSBOOT_HEALTH_USR_DIR: d.usr,
    CFSBOOT_HEALTH_ETC_DIR: d.etc,
    CFSBOOT_HEALTH_RECORDS: d.records,
    CFSBOOT_RUN_DIR: d.run,
    CFSBOOT_EFIVARS_DIR: d.efivars,
    CFSBOOT_ESP_DIR: d.esp,
    CFSBOOT_HEALTH_REBOOT: `touch ${join(root, 'rebooted')}`,
  }
  return d
}

function check(dir: string, name: string, body: string, mode = 0o755): void {
  writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, {mode})
}

function efivar(d: Device, name: string, value: string): void {
  const data = Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from(value + '\0', 'utf16le')])
  writeFileSync(join(d.efivars, `${name}-${LOADER_GUID}`), data)
}

function run(d: Device): {code: number | null; out: string} {
  const r = spawnSync('sh', [PROGRAM], {env: d.env, encoding: 'utf8', timeout: 60_000})
  return {code: r.status, out: r.stdout + r.stderr}
}

test('all required checks pass: the counted BLS entry loses its counter; record good', async () => {
  const d = device()
  check(d.usr, '10-ok', 'echo fine')
  check(d.usr, '20-optional.wanted', 'exit 1')
  writeFileSync(join(d.esp, 'loader/entries', `cfsboot-${D16}+1-1.conf`), 'options cfsboot.digest=x\n')
  efivar(d, 'LoaderBootCountPath', `\\loader\\entries\\cfsboot-${D16}+1-1.conf`)
  const r = run(d)
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /\[10-ok\] fine/)
  assert.match(r.out, /wanted check failed: 20-optional.wanted \(exit 1\)/)
  assert.deepEqual(readdirSync(join(d.esp, 'loader/entries')), [`cfsboot-${D16}.conf`])
  const rec = await readHealthRecord(d.varDir, DIGEST)
  assert.deepEqual(rec, {
    result: 'good',
    time: rec!.time,
    entry: `cfsboot-${D16}.conf`,
    failed: [],
    wantedFailed: ['20-optional.wanted (exit 1)'],
  })
  assert.match(rec!.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  assert.equal(existsSync(join(d.root, 'rebooted')), false)
})

test('a required check fails: exit 1, nothing renamed, the reason recorded, the reboot command run', async () => {
  const d = device()
  check(d.usr, '10-ok', 'exit 0')
  check(d.usr, '50-service', 'echo "service down" >&2; exit 3')
  const entry = `cfsboot-0000000004-${D16}+1-1.efi`
  writeFileSync(join(d.esp, 'EFI/Linux', entry), 'MZ')
  efivar(d, 'LoaderBootCountPath', `\\EFI\\Linux\\${entry}`)
  const r = run(d)
  assert.equal(r.code, 1, r.out)
  assert.match(r.out, /\[50-service\] service down/)
  assert.match(r.out, /required check failed: 50-service \(exit 3\)/)
  assert.deepEqual(readdirSync(join(d.esp, 'EFI/Linux')), [entry])
  const rec = await readHealthRecord(d.varDir, DIGEST)
  assert.equal(rec?.result, 'failed')
  assert.deepEqual(rec?.failed, ['50-service (exit 3)'])
  assert.equal(rec?.entry, entry)
  assert.ok(existsSync(join(d.root, 'rebooted')), 'on-failure = reboot ran the reboot command')
})

test('on-failure = none: no reboot; a check over the time bound counts as failed', async () => {
  const d = device('[health]\ntimeout = 1\non-failure = none\n')
  check(d.usr, '30-slow', 'sleep 10')
  const t0 = Date.now()
  const r = run(d)
  assert.equal(r.code, 1, r.out)
  assert.ok(Date.now() - t0 < 8000, 'the check was stopped at its bound')
  assert.match(r.out, /required check failed: 30-slow \(timed out after 1 s\)/)
  assert.equal(existsSync(join(d.root, 'rebooted')), false)
})

test('/etc overrides /usr/lib by name; a /dev/null symlink or a non-executable file disables', async () => {
  const d = device()
  check(d.usr, '10-a', 'exit 1')
  check(d.etc, '10-a', 'exit 0') // replaced by the administrator
  check(d.usr, '20-b', 'exit 1')
  symlinkSync('/dev/null', join(d.etc, '20-b')) // masked
  check(d.usr, '30-c', 'exit 1')
  check(d.etc, '30-c', 'exit 1', 0o644) // disabled: not executable
  check(d.etc, 'bad name', 'exit 1')
  check(d.usr, '40-d', 'exit 0')
  writeFileSync(join(d.esp, 'loader/entries', `cfsboot-${D16}+2.conf`), `options cfsboot.digest=${DIGEST}\n`)
  // No loader variables (another boot loader, or efivarfs missing): found by the booted digest.
  const r = run(d)
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /ignoring check 'bad name'/)
  assert.match(r.out, /boot is good: 2 check\(s\) passed; marked cfsboot-[0-9a-f]{16}\.conf/)
  assert.deepEqual(readdirSync(join(d.esp, 'loader/entries')), [`cfsboot-${D16}.conf`])
})

test('a UKI found by its digest; LoaderEntrySelected of an uncounted entry: nothing to mark', async () => {
  const d = device()
  const entry = `cfsboot-0000000007-${D16}+3.efi`
  writeFileSync(join(d.esp, 'EFI/Linux', entry), 'MZ')
  let r = run(d)
  assert.equal(r.code, 0, r.out)
  assert.deepEqual(readdirSync(join(d.esp, 'EFI/Linux')), [`cfsboot-0000000007-${D16}.efi`])
  efivar(d, 'LoaderEntrySelected', `cfsboot-0000000007-${D16}.efi`)
  r = run(d)
  assert.equal(r.code, 0, r.out)
  assert.match(r.out, /has no boot counter/)
  assert.equal(JSON.parse(readFileSync(join(d.records, `${DIGEST}.json`), 'utf8')).checks, 0)
})
