// Signed UKIs and boot order without a VM: build + sign with Debian's snakeoil test key, sbverify,
// the PE reader on the result, the model of systemd-boot's order with mixed kinds and counters,
// deploy/rollback with UKIs (rollback is a rename), gc keeping the last good deployment, and
// `status --json` with a failed deployment and its health record (schema-validated).
import assert from 'node:assert/strict'
import {execFileSync} from 'node:child_process'
import {existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'

import {parsePeHeaders, readSection, sectionText} from '../src/boot/pe.js'
import {buildUki, parseUkiName, readUkiSections, ukiFileName, ukiOsRelease} from '../src/boot/uki.js'
import {deploy} from '../src/deploy/deploy.js'
import {parseConfig} from '../src/deploy/config.js'
import {BootEntry, bootOrder, DEMOTED_SORT_KEY, readEntries, verscmp} from '../src/deploy/entries.js'
import {gc} from '../src/deploy/gc.js'
import {rollback} from '../src/deploy/rollback.js'
import {InvalidInputError} from '../src/errors.js'
import {sbsign, sbverify} from '../src/system/uki-tools.js'
import {makeImage, TestImage} from './helpers/images.js'
import {cli as runCli, makeSysroot, schemaErrors, setBooted, Sysroot} from './helpers/sysroot.js'
import {hasTool} from './helpers/tools.js'

const STUB = '/usr/lib/systemd/boot/efi/linuxx64.efi.stub'
const SNAKEOIL_KEY = '/usr/share/ovmf/PkKek-1-snakeoil.key'
const SNAKEOIL_CERT = '/usr/share/ovmf/PkKek-1-snakeoil.pem'

function ukiSkip(): string | false {
  const missing: string[] = []
  if (!existsSync(STUB)) missing.push(`${STUB} (Debian package systemd-boot-efi)`)
  if (!existsSync(SNAKEOIL_KEY)) missing.push(`${SNAKEOIL_KEY} (Debian package ovmf)`)
  for (const [t, p] of [
    ['objcopy', 'binutils'],
    ['sbsign', 'sbsigntool'],
    ['sbverify', 'sbsigntool'],
    ['openssl', 'openssl'],
  ])
    if (!hasTool(t!)) missing.push(`${t} (Debian package ${p})`)
  return missing.length ? `needs ${missing.join(', ')}` : false
}
const skip = ukiSkip()

let work: string
let key: string
before(() => {
  work = mkdtempSync(join(tmpdir(), 'cfsboot-uki-test-'))
  key = join(work, 'db.key')
  if (!skip) execFileSync('openssl', ['pkey', '-in', SNAKEOIL_KEY, '-passin', 'pass:snakeoil', '-out', key])
})
after(() => rmSync(work, {recursive: true, force: true}))

const D1 = 'a'.repeat(64)

describe('UKI build and PE reader', {skip}, () => {
  test('a UKI built from kernel + initramfs verifies with the snakeoil certificate; .cmdline and .osrel read back', async () => {
    const out = join(work, 'test.efi')
    const kernel = Buffer.alloc(300_000, 0x4b)
    const initramfs = Buffer.alloc(123_457, 0x49)
    const osrel = ukiOsRelease({NAME: 'Test OS', ID: 'test', VERSION_ID: '7'}, 'Test OS 7 (aaaaaaaaaaaa)')
    await buildUki({
      kernel,
      initramfs,
      cmdline: `cfsboot.digest=${D1} cfsboot.verity=require console=ttyS0`,
      osrel,
      out,
      key,
      cert: SNAKEOIL_CERT,
    })
    const v = await sbverify(SNAKEOIL_CERT, out)
    assert.equal(v.ok, true, v.message)

    const bytes = readFileSync(out)
    const h = parsePeHeaders(bytes)
    assert.equal(h.pe32plus, true)
    const names = h.sections.map((s) => s.name)
    for (const n of ['.osrel', '.cmdline', '.initrd', '.linux']) assert.ok(names.includes(n), names.join(' '))
    // Our sections go above the stub's, in order, without overlapping.
    const stubEnd = Math.max(
      ...parsePeHeaders(readFileSync(STUB)).sections.map((s) => s.virtualAddress + s.virtualSize),
    )
    const ours = h.sections.filter((s) => ['.osrel', '.cmdline', '.initrd', '.linux'].includes(s.name))
    assert.ok(ours[0]!.virtualAddress >= stubEnd)
    for (let i = 1; i < ours.length; i++)
      assert.ok(ours[i]!.virtualAddress >= ours[i - 1]!.virtualAddress + ours[i - 1]!.virtualSize)
    assert.ok(readSection(bytes, '.linux')!.equals(kernel))
    assert.ok(readSection(bytes, '.initrd')!.equals(initramfs))
    assert.equal(
      sectionText(readSection(bytes, '.cmdline')!),
      `cfsboot.digest=${D1} cfsboot.verity=require console=ttyS0`,
    )
    const s = await readUkiSections(out)
    assert.match(s.osrel, /^IMAGE_ID=cfsboot$/m)
    assert.match(s.osrel, /^IMAGE_VERSION=0$/m)
    assert.match(s.osrel, /^PRETTY_NAME="Test OS 7 \(aaaaaaaaaaaa\)"$/m)

    // One changed byte in the signed .cmdline: the signature no longer verifies.
    const at = bytes.indexOf(Buffer.from(`cfsboot.digest=${D1}`)) + 20
    bytes[at] = 0x62
    writeFileSync(join(work, 'tampered.efi'), bytes)
    assert.equal((await sbverify(SNAKEOIL_CERT, join(work, 'tampered.efi'))).ok, false)
  })

  test('an encrypted key is refused with one line (sbsign would ask for a passphrase)', async () => {
    await assert.rejects(
      sbsign({key: SNAKEOIL_KEY, cert: SNAKEOIL_CERT, input: STUB, out: join(work, 'x.efi')}),
      (e: unknown) => e instanceof InvalidInputError && /encrypted/.test(e.message),
    )
  })

  test('the PE reader refuses garbage and truncated headers with InvalidInputError', () => {
    assert.throws(
      () => parsePeHeaders(Buffer.from('not a PE file at all, just text'.repeat(4))),
      InvalidInputError,
    )
    const stub = readFileSync(STUB)
    assert.throws(() => parsePeHeaders(stub.subarray(0, 200)), InvalidInputError)
    const bad = Buffer.from(stub)
    bad.writeUInt32LE(0x7fffffff, 0x3c)
    assert.throws(() => parsePeHeaders(bad), InvalidInputError)
  })
})

function entry(over: Partial<BootEntry> & {file: string}): BootEntry {
  return {
    kind: 'bls',
    dir: '',
    id: '',
    digest: D1,
    generation: 1,
    triesLeft: null,
    triesDone: null,
    title: '',
    linux: '',
    initrd: '',
    options: [],
    sortKey: 'cfsboot',
    version: '1',
    ...over,
  }
}

describe('boot order (systemd-boot 252’s config_entry_compare)', () => {
  test('verscmp follows strverscmp_improved', () => {
    assert.ok(verscmp('10', '9') > 0)
    assert.ok(verscmp('cfsboot-0000000010-ab.efi', 'cfsboot-0000000009-ff.efi') > 0)
    assert.ok(verscmp('1.0~rc1', '1.0') < 0)
    assert.ok(verscmp('123-1', '123.1') < 0)
    assert.ok(verscmp('123a', '123.a') > 0)
    assert.equal(verscmp('0', '0'), 0)
  })

  test('mixed counters and kinds: no tries left last, then version, then UKI file names', () => {
    const es = [
      entry({file: 'cfsboot-1111111111111111.conf', version: '1', generation: 1}),
      entry({
        file: 'cfsboot-2222222222222222+0-3.conf',
        version: '2',
        generation: 2,
        triesLeft: 0,
        triesDone: 3,
      }),
      entry({
        file: 'cfsboot-3333333333333333+1-1.conf',
        version: '3',
        generation: 3,
        triesLeft: 1,
        triesDone: 1,
      }),
      entry({
        kind: 'uki',
        file: ukiFileName(5, 'c'.repeat(64), 2),
        version: '0',
        generation: 5,
        triesLeft: 2,
      }),
      entry({kind: 'uki', file: ukiFileName(4, 'd'.repeat(64), null), version: '0', generation: 4}),
      entry({
        kind: 'uki',
        file: ukiFileName(6, 'e'.repeat(64), 0, 2),
        version: '0',
        generation: 6,
        triesLeft: 0,
        triesDone: 2,
      }),
      entry({file: 'cfsboot-7777777777777777.conf', version: '7', generation: 7, sortKey: DEMOTED_SORT_KEY}),
    ]
    assert.deepEqual(
      bootOrder(es).map((e) => e.generation),
      // BLS versions 3, 1 beat every UKI (fixed version 0); UKIs by name; a demoted sort key
      // after all of cfsboot's; entries out of tries last (among them the same order again).
      [3, 1, 5, 4, 7, 2, 6],
    )
    assert.deepEqual(parseUkiName('cfsboot-0000000012-0123456789abcdef+1-2.efi'), {
      id: 'cfsboot-0000000012-0123456789abcdef',
      generation: 12,
      digest16: '0123456789abcdef',
      triesLeft: 1,
      triesDone: 2,
    })
  })
})

describe('deployments with UKIs and boot counting', {skip}, () => {
  let s: Sysroot
  const img: TestImage[] = []
  const conf = (): string =>
    `[boot]\nkernel-args = console=ttyS0\ntries = 2\n[uki]\nkey = ${key}\ncert = ${SNAKEOIL_CERT}\n`

  before(async () => {
    s = await makeSysroot({parent: work})
    writeFileSync(s.config, conf())
    for (const v of ['1', '2', '3']) img.push(makeImage(join(work, `img${v}`), {version: v}))
  })

  const ukiDir = (): string => join(s.paths.bootDir, 'EFI', 'Linux')

  test('deploy writes a signed, counted UKI; redeploying a failed one renames it without a counter; rollback is a rename', async () => {
    const config = parseConfig(conf())
    const r1 = await deploy({
      paths: s.paths,
      config,
      image: img[0]!.image,
      objects: img[0]!.objects,
      countTries: false,
    })
    assert.equal(r1.entryKind, 'uki')
    assert.equal(r1.entry, ukiFileName(1, img[0]!.digest, null))
    const r2 = await deploy({paths: s.paths, config, image: img[1]!.image, objects: img[1]!.objects})
    assert.equal(r2.entry, ukiFileName(2, img[1]!.digest, 2))
    assert.equal((await sbverify(SNAKEOIL_CERT, join(ukiDir(), r2.entry))).ok, true)
    let {entries} = await readEntries(s.paths.entries)
    assert.deepEqual(
      entries.map((e) => e.digest),
      [img[1]!.digest, img[0]!.digest],
    )
    assert.equal(entries[0]!.kind, 'uki')
    // The default policy (verity = require): cfsboot.conf here sets only the kernel arguments.
    assert.deepEqual(entries[0]!.options, ['cfsboot.verity=require', 'console=ttyS0'])

    // The boot loader used up v2's tries: v1 boots by default again.
    const failed = ukiFileName(2, img[1]!.digest, 0, 2)
    execFileSync('mv', [join(ukiDir(), r2.entry), join(ukiDir(), failed)])
    ;({entries} = await readEntries(s.paths.entries))
    assert.deepEqual(
      entries.map((e) => e.digest),
      [img[0]!.digest, img[1]!.digest],
    )
    setBooted(s, img[0]!.digest)
    const st = await runCli(s, ['status', '--json'], {CFSBOOT_EFIVARS_DIR: join(work, 'none')})
    const status = JSON.parse(st.stdout) as {
      deployments: {digest: string; failed: boolean; failedReason: string}[]
    }
    const d2 = status.deployments.find((d) => d.digest === img[1]!.digest)!
    assert.equal(d2.failed, true)
    assert.match(d2.failedReason, /ran out after 2 tries; no health record/)

    // Rollback never picks the failed one: there is nothing else.
    await assert.rejects(rollback({paths: s.paths, config}), {code: 'ENOROLLBACK'})
    // Deploying it again is the administrator's choice: renamed, next generation, no counter.
    const again = await deploy({paths: s.paths, config, image: img[1]!.image})
    assert.equal(again.existing, true)
    assert.equal(again.entry, ukiFileName(3, img[1]!.digest, null))
    assert.deepEqual(readdirSync(ukiDir()).sort(), [ukiFileName(1, img[0]!.digest, null), again.entry])
    // Rollback to v1: a rename of v1's UKI (its bytes, and signature, unchanged).
    const before1 = readFileSync(join(ukiDir(), ukiFileName(1, img[0]!.digest, null)))
    const rb = await rollback({paths: s.paths, config})
    assert.equal(rb.entry, ukiFileName(4, img[0]!.digest, null))
    assert.ok(readFileSync(join(ukiDir(), rb.entry)).equals(before1))
  })

  test('gc never removes the last good deployment while a new one is still counting', async () => {
    const config = parseConfig(`${conf()}[gc]\nkeep-rollback = 0\n`)
    setBooted(s, null)
    // v3 counting (+2); v2 rolled back (good, no counter); v1 default before… keep none extra.
    const r3 = await deploy({paths: s.paths, config, image: img[2]!.image, objects: img[2]!.objects})
    assert.equal(r3.tries, 2)
    const {entries} = await readEntries(s.paths.entries)
    const lastGood = entries.find((e) => e.triesLeft === null)!
    const res = await gc({paths: s.paths, config, dryRun: true})
    assert.ok(res.deployments.kept.includes(img[2]!.digest), 'the default')
    assert.ok(res.deployments.kept.includes(lastGood.digest), 'the last good one, though keep-rollback is 0')
  })
})

describe('status --json with a health record', () => {
  test('a failed BLS deployment: the reason names the failed check; the schema validates', async () => {
    const s = await makeSysroot({parent: work})
    writeFileSync(s.config, '[boot]\ntries = 3\n')
    const a = makeImage(join(work, 'h1'), {version: '1'})
    const b = makeImage(join(work, 'h2'), {version: '2'})
    const config = parseConfig('[boot]\ntries = 3\n')
    const r1 = await deploy({paths: s.paths, config, image: a.image, objects: a.objects, countTries: false})
    assert.equal(r1.entryKind, 'bls')
    assert.equal(r1.entry, `cfsboot-${a.digest.slice(0, 16)}.conf`)
    const r2 = await deploy({paths: s.paths, config, image: b.image, objects: b.objects})
    assert.equal(r2.entry, `cfsboot-${b.digest.slice(0, 16)}+3.conf`)
    execFileSync('mv', [
      join(s.paths.entries, r2.entry),
      join(s.paths.entries, `cfsboot-${b.digest.slice(0, 16)}+0-3.conf`),
    ])
    const records = join(s.paths.var, 'lib', 'cfsboot', 'health')
    mkdirSync(records, {recursive: true})
    writeFileSync(
      join(records, `${b.digest}.json`),
      JSON.stringify({
        digest: b.digest,
        result: 'failed',
        time: '2025-01-01T00:00:00Z',
        entry: 'x',
        failed: ['50-net (exit 1)'],
        wantedFailed: [],
      }),
    )
    setBooted(s, a.digest)
    const efivars = join(work, 'efivars')
    mkdirSync(efivars, {recursive: true})
    const utf16 = (text: string): Buffer =>
      Buffer.concat([Buffer.from([6, 0, 0, 0]), Buffer.from(text + '\0', 'utf16le')])
    writeFileSync(join(efivars, 'LoaderEntrySelected-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f'), utf16(r1.entry))
    writeFileSync(
      join(efivars, 'SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c'),
      Buffer.from([6, 0, 0, 0, 1]),
    )
    const st = await runCli(s, ['status', '--json'], {CFSBOOT_EFIVARS_DIR: efivars})
    assert.equal(st.code, 0, st.stderr)
    const json = JSON.parse(st.stdout) as {
      loader: {entrySelected: string; secureBoot: boolean; bootCountPath: null}
      deployments: {
        digest: string
        booted: boolean
        failed: boolean
        failedReason: string
        health: {result: string}
      }[]
    }
    assert.equal(schemaErrors('status', json), '')
    assert.deepEqual(json.loader, {entrySelected: r1.entry, bootCountPath: null, secureBoot: true})
    const failed = json.deployments.find((d) => d.digest === b.digest)!
    assert.equal(failed.failed, true)
    assert.equal(failed.health.result, 'failed')
    assert.equal(
      failed.failedReason,
      'boot counting ran out after 3 tries; health check failed: 50-net (exit 1)',
    )
    assert.equal(json.deployments.find((d) => d.digest === a.digest)!.booted, true)
    const human = await runCli(s, ['status'], {CFSBOOT_EFIVARS_DIR: efivars})
    assert.match(
      human.stdout,
      /failed:  boot counting ran out after 3 tries; health check failed: 50-net \(exit 1\)/,
    )
    assert.match(human.stdout, /boot loader: booted cfsboot-/)
  })
})
