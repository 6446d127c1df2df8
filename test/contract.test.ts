// The boot contract (src/boot/contract.ts) against the files that cannot import it: the dracut
// hooks, the health program and its units. Each check names a contract constant, so renaming
// it on either side fails here. Then the contract's parsers on strings, and the command-line
// rule cross-checked against dracut's own getarg (dracut-core's dracut-util) running the
// real cfsboot_digest from cfsboot-lib.sh.

import assert from 'node:assert/strict'
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, test} from 'node:test'

import * as C from '../src/boot/contract.js'
import {HEALTH_RECORD_DIR, LOADER_GUID} from '../src/boot/health.js'
import {formatEntry, parseEntry} from '../src/deploy/entries.js'
import {sysrootPaths} from '../src/deploy/paths.js'
import {ESP_MOUNT_ROOT} from '../src/system/esp.js'
import {STAGING_ROOT} from '../src/system/mount.js'
import {REPO} from './helpers/sysroot.js'

const DRACUT = join(REPO, 'dracut', '90cfsboot')
const HEALTH = join(REPO, 'templates', 'health')
const read = (dir: string, f: string): string => readFileSync(join(dir, f), 'utf8')
const lib = read(DRACUT, 'cfsboot-lib.sh')
/** The mount step's body, shared by both initramfs flavours (the shell hook and the systemd unit's
 * script each call it). */
const mountHook = lib.slice(lib.indexOf('cfsboot_mount() {'))
const cmdlineHook = read(DRACUT, 'cfsboot-cmdline.sh')
const health = read(HEALTH, 'cfsboot-health')
const unit = read(HEALTH, 'cfsboot-health.service')
const start = read(HEALTH, 'cfsboot-health.start')
/** Every file of the dracut module (hooks, and any unit or generator added later). */
const dracutFiles = readdirSync(DRACUT).map((f) => [f, read(DRACUT, f)] as const)
const bootFiles = [...dracutFiles, ...readdirSync(HEALTH).map((f) => [f, read(HEALTH, f)] as const)]

const D = 'a'.repeat(64)
const E = 'b'.repeat(64)
const tmp = mkdtempSync(join(tmpdir(), 'cfsboot-contract-'))
after(() => rmSync(tmp, {recursive: true, force: true}))

function includes(text: string, needle: string, where: string): void {
  assert.ok(text.includes(needle), `${where} does not contain ${JSON.stringify(needle)}`)
}

test('the initramfs reads the kernel arguments and defaults the contract names', () => {
  includes(lib, `getarg ${C.KARG_DIGEST}=`, 'cfsboot-lib.sh')
  includes(lib, `getarg ${C.KARG_COMPOSEFS}=`, 'cfsboot-lib.sh')
  includes(lib, `getarg ${C.KARG_VERITY}=`, 'cfsboot-lib.sh')
  includes(lib, `getarg ${C.KARG_ROOT}=`, 'cfsboot-lib.sh')
  includes(lib, `\${_p:-${C.DEFAULT_VERITY}}`, 'cfsboot-lib.sh (default policy)')
  includes(lib, `\${_r:-${C.DEFAULT_ROOT}}`, 'cfsboot-lib.sh (default root)')
  includes(mountHook, `${C.VERITY_POLICIES.join(' | ')})`, 'cfsboot_mount (policy check)')
  // cfsboot.digest= is asked first: it wins over composefs= (digestFromCmdline does the same).
  assert.ok(lib.indexOf(`getarg ${C.KARG_DIGEST}=`) < lib.indexOf(`getarg ${C.KARG_COMPOSEFS}=`))
})

test('every cfsboot.* argument and composefs/ path in the boot files is one of the contract', () => {
  const kargs = new Set([C.KARG_DIGEST, C.KARG_VERITY, C.KARG_ROOT])
  const paths = new Set([C.OBJECTS_DIR, C.IMAGES_DIR, C.DEPLOYMENTS_DIR, C.SEAL_PENDING])
  let nk = 0
  let np = 0
  for (const [f, text] of bootFiles) {
    // Arguments are written "cfsboot.NAME" followed by "=" or the end of a word.
    for (const m of text.matchAll(/\bcfsboot\.([a-z]+)\b(?!\.|-)/g)) {
      if (m[1] === 'conf' || m[1] === 'dev' || m[1] === 'lock') continue // file names, URLs
      assert.ok(kargs.has(m[0]), `${f} uses ${m[0]}, not a kernel argument of the contract`)
      nk++
    }
    for (const m of text.matchAll(/\bcomposefs\/([a-z-]+)/g)) {
      assert.ok(paths.has(m[0] as never), `${f} uses ${m[0]}, not a path of the contract`)
      np++
    }
  }
  assert.ok(nk >= 8, `found only ${nk} kernel arguments: the pattern no longer matches the files`)
  assert.ok(np >= 5, `found only ${np} composefs/ paths: the pattern no longer matches the files`)
})

test('the mount hook uses the contract layout of the physical root and its run directory', () => {
  includes(lib, `CFSBOOT_RUN=${C.RUN_DIR}\n`, 'cfsboot-lib.sh')
  includes(lib, `$CFSBOOT_SYSROOT/${C.OBJECTS_DIR}`, 'cfsboot-lib.sh (cfsboot_seal)')
  includes(lib, `$CFSBOOT_SYSROOT/${C.SEAL_PENDING}`, 'cfsboot-lib.sh (cfsboot_seal)')
  includes(mountHook, `$CFSBOOT_SYSROOT/${C.IMAGES_DIR}/$_digest`, 'cfsboot_mount')
  includes(mountHook, `$CFSBOOT_SYSROOT/${C.DEPLOYMENTS_DIR}/$_digest`, 'cfsboot_mount')
  includes(mountHook, `$CFSBOOT_SYSROOT/${C.SEAL_PENDING}`, 'cfsboot_mount')
  includes(mountHook, `::$CFSBOOT_SYSROOT/${C.OBJECTS_DIR}`, 'cfsboot_mount (overlay lowerdir)')
  includes(mountHook, `$CFSBOOT_SYSROOT/${C.VAR_DIR}"`, 'cfsboot_mount (/var)')
  includes(mountHook, `"$CFSBOOT_RUN/${C.BOOTED_RECORD}"`, 'cfsboot_mount')
  // The cmdline hook claims the root only for a digest, through the same library function.
  includes(cmdlineHook, '$(cfsboot_digest)', 'cfsboot-cmdline.sh')
  includes(cmdlineHook, '$(cfsboot_root_dev)', 'cfsboot-cmdline.sh')
})

test('the booted.json the mount hook writes is what parseBootedRecord reads', () => {
  const m = /printf '(\{[^']*\})\\n' \\\n\s*"\$_digest" "\$_policy" "\$_image_verity" "\$_ms"/.exec(mountHook)
  assert.ok(m, 'cfsboot_mount: the booted.json printf (format and arguments) not found')
  const values = [D, 'maybe', 'false', '37']
  const text = m[1]!.replace(/%s/g, () => values.shift()!)
  assert.equal(values.length, 0, 'the format has as many %s as arguments')
  assert.deepEqual(Object.keys(JSON.parse(text)), [...C.BOOTED_KEYS])
  assert.deepEqual(C.parseBootedRecord(text), {digest: D, verity: 'maybe', imageVerity: false, mountMs: 37})
})

test('the health program and its units use the contract names', () => {
  includes(health, `RUN_DIR=\${CFSBOOT_RUN_DIR:-${C.RUN_DIR}}`, 'cfsboot-health')
  includes(health, `"$RUN_DIR/${C.BOOTED_RECORD}"`, 'cfsboot-health')
  includes(health, `"${C.BOOTED_KEYS[0]}": *"`, 'cfsboot-health (booted.json digest key)')
  includes(health, `ESP_PARTLABEL=${C.ESP_PARTLABEL}\n`, 'cfsboot-health')
  includes(health, `grep -q "${C.KARG_DIGEST}=$DIGEST"`, 'cfsboot-health (BLS entry by digest)')
  includes(health, `loader/entries/${C.ENTRY_PREFIX}*.conf`, 'cfsboot-health')
  includes(health, `EFI/Linux/${C.ENTRY_PREFIX}*.efi`, 'cfsboot-health')
  includes(unit, `ConditionKernelCommandLine=|${C.KARG_DIGEST}\n`, 'cfsboot-health.service')
  includes(unit, `ConditionKernelCommandLine=|${C.KARG_COMPOSEFS}\n`, 'cfsboot-health.service')
  const re = `(${C.KARG_DIGEST.replace('.', '\\.')}|${C.KARG_COMPOSEFS})=`
  includes(start, re, 'cfsboot-health.start')
  // What cfsboot status reads back (src/boot/health.ts).
  includes(health, `RECORDS=\${CFSBOOT_HEALTH_RECORDS:-/var/${HEALTH_RECORD_DIR}}`, 'cfsboot-health')
  includes(health, `LOADER_GUID=${LOADER_GUID}\n`, 'cfsboot-health')
})

test('the Node side builds its paths from the contract', () => {
  const p = sysrootPaths('/sr')
  assert.equal(p.objects, `/sr/${C.OBJECTS_DIR}`)
  assert.equal(p.images, `/sr/${C.IMAGES_DIR}`)
  assert.equal(p.deployments, `/sr/${C.DEPLOYMENTS_DIR}`)
  assert.equal(p.staging, `/sr/${C.STAGING_DIR}`)
  assert.equal(p.lock, `/sr/${C.LOCK_FILE}`)
  assert.equal(p.var, `/sr/${C.VAR_DIR}`)
  // src/system cannot import src/boot (src/boot uses src/system): checked here instead.
  assert.equal(ESP_MOUNT_ROOT, C.RUN_DIR)
  assert.ok(STAGING_ROOT.startsWith(C.RUN_DIR + '/'))
  assert.equal(C.DEFAULT_ROOT, `PARTLABEL=${C.ROOT_PARTLABEL}`)
})

// --- parsers -------------------------------------------------------------------------------------

/** Command lines and the digest the initramfs boots from each (null: it refuses). */
const CMDLINES: [string, string | null][] = [
  [`root=x ${C.KARG_DIGEST}=${D} quiet`, D],
  [`${C.KARG_COMPOSEFS}=${D}`, D],
  // Both: cfsboot.digest= wins, wherever it is.
  [`${C.KARG_DIGEST}=${D} ${C.KARG_COMPOSEFS}=${E}`, D],
  [`${C.KARG_COMPOSEFS}=${E} ${C.KARG_DIGEST}=${D}`, D],
  // Twice: the last one wins (the kernel passes both; dracut's getarg takes the last).
  [`${C.KARG_DIGEST}=${E} ${C.KARG_DIGEST}=${D}`, D],
  // The last one is bad: refused, not the earlier good one.
  [`${C.KARG_DIGEST}=${D} ${C.KARG_DIGEST}=xyz`, null],
  [`${C.KARG_DIGEST}=${D.toUpperCase()}`, null],
  [`${C.KARG_DIGEST}=${D.slice(1)}`, null],
  [`${C.KARG_DIGEST}=${D}0`, null],
  // A bad cfsboot.digest= is not replaced by a good composefs=: the shell takes the first found.
  [`${C.KARG_DIGEST}=nothex ${C.KARG_COMPOSEFS}=${D}`, null],
  // An empty cfsboot.digest= counts as none.
  [`${C.KARG_DIGEST}= ${C.KARG_COMPOSEFS}=${D}`, D],
  // Quoted values lose their quotes; a quoted space does not split.
  [`${C.KARG_DIGEST}="${D}"`, D],
  [`foo="a b ${C.KARG_DIGEST}=${E}" ${C.KARG_DIGEST}=${D}`, D],
  [`"${C.KARG_DIGEST}=${D}"`, D],
  // Not the argument: a longer key, a prefix, no value.
  [`x${C.KARG_DIGEST}=${D} ${C.KARG_DIGEST}x=${D}`, null],
  [`${C.KARG_DIGEST}`, null],
  ['', null],
  [`\t${C.KARG_DIGEST}=${D}\n`, D],
]

test('digestFromCmdline: which argument wins', () => {
  for (const [cmdline, want] of CMDLINES) assert.equal(C.digestFromCmdline(cmdline), want, cmdline)
  assert.equal(C.digestFromCmdline(`${C.KARG_DIGEST}=${D} `.repeat(C.MAX_CMDLINE_BYTES)), null)
})

test('splitKernelArgs keeps arguments as written and strips only the value quotes', () => {
  assert.deepEqual(C.splitKernelArgs(' a=1  b="x y" c d=\n'), [
    {raw: 'a=1', key: 'a', value: '1'},
    {raw: 'b="x y"', key: 'b', value: 'x y'},
    {raw: 'c', key: 'c', value: null},
    {raw: 'd=', key: 'd', value: ''},
  ])
  assert.equal(C.kernelArg(C.splitKernelArgs('a=1 a=2 a'), 'a'), '2')
})

// dracut's getarg is the C tool dracut-util called as dracut-getarg; it reads $CMDLINE.
const DRACUT_UTIL = '/usr/lib/dracut/dracut-util'
test(
  'the shell cfsboot_digest under dracut getarg agrees with digestFromCmdline',
  {skip: existsSync(DRACUT_UTIL) ? false : `${DRACUT_UTIL} missing (dracut-core not installed)`},
  () => {
    const getarg = join(tmp, 'dracut-getarg')
    symlinkSync(DRACUT_UTIL, getarg)
    const script = [
      `getarg() { CMDLINE="$TEST_CMDLINE" ${JSON.stringify(getarg)} "$1"; }`,
      `. ${JSON.stringify(join(DRACUT, 'cfsboot-lib.sh'))}`,
      '_d=$(cfsboot_digest)',
      'cfsboot_is_digest "$_d" && echo "$_d"',
      'exit 0',
    ].join('\n')
    for (const [cmdline, want] of CMDLINES.filter(([c]) => c.length < 4096)) {
      const r = spawnSync('sh', ['-c', script], {env: {PATH: process.env.PATH, TEST_CMDLINE: cmdline}})
      assert.equal(r.status, 0, r.stderr.toString())
      assert.equal(r.stdout.toString().trim() || null, want, `shell, ${JSON.stringify(cmdline)}`)
    }
  },
)

test('parseBootedRecord: a valid digest is required, other fields are optional', () => {
  assert.deepEqual(C.parseBootedRecord(`{"digest": "${D}"}`), {
    digest: D,
    verity: null,
    imageVerity: null,
    mountMs: null,
  })
  assert.equal(C.parseBootedRecord(`{"digest": "${D.toUpperCase()}"}`), null)
  assert.equal(C.parseBootedRecord('{"verity": "require"}'), null)
  assert.equal(C.parseBootedRecord('not json'), null)
  assert.equal(C.parseBootedRecord('null'), null)
  assert.equal(C.parseBootedRecord(`["${D}"]`), null)
  assert.equal(C.parseBootedRecord(`{"digest": "${D}", "pad": "${'x'.repeat(5000)}"}`), null)
  assert.deepEqual(C.parseBootedRecord(`{"digest": "${D}", "verity": "strict", "mountMs": "9"}`), {
    digest: D,
    verity: null,
    imageVerity: null,
    mountMs: null,
  })
})

const ENTRY = (options: string): string =>
  `title T\nversion 3\nsort-key ${C.SORT_KEY}\nlinux /k\ninitrd /i\noptions ${options}\n`
const FILE = `${C.ENTRY_PREFIX}${D.slice(0, 16)}+2-1.conf`

test('parseEntry: the digest by the initramfs rule, the other options as written', () => {
  const e = parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}=${D} ${C.KARG_VERITY}=maybe a="x y"`))
  assert.ok(e)
  assert.equal(e.digest, D)
  assert.deepEqual(e.options, [`${C.KARG_VERITY}=maybe`, 'a="x y"'])
  assert.equal(e.triesLeft, 2)
  assert.equal(e.triesDone, 1)
  assert.equal(e.generation, 3)
  // Round trip: what formatEntry writes boots the same digest with the same options.
  assert.deepEqual(parseEntry(FILE, formatEntry(e)), e)

  // Two cfsboot.digest=: the last counts (the file name must match it), both are dropped.
  const two = parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}=${E} q ${C.KARG_DIGEST}=${D}`))
  assert.equal(two?.digest, D)
  assert.deepEqual(two?.options, ['q'])
  assert.equal(parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}=${D} ${C.KARG_DIGEST}=${E}`)), null)
  // composefs= alone names it too (kept in the options: it is not ours to rewrite).
  assert.equal(parseEntry(FILE, ENTRY(`${C.KARG_COMPOSEFS}=${D}`))?.digest, D)
  // Quoted digest.
  assert.equal(parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}="${D}"`))?.digest, D)
  // Bad hex, no digest, a digest the file name does not carry, a name that is not ours.
  assert.equal(parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}=${D.slice(2)}zz`)), null)
  assert.equal(parseEntry(FILE, ENTRY('quiet')), null)
  assert.equal(parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}=${E}`)), null)
  assert.equal(parseEntry(`other-${D.slice(0, 16)}.conf`, ENTRY(`${C.KARG_DIGEST}=${D}`)), null)
  // A version that is not a generation number.
  assert.equal(parseEntry(FILE, ENTRY(`${C.KARG_DIGEST}=${D}`).replace('version 3', 'version x')), null)
})

test('both initramfs flavours run the one mount step', () => {
  assert.match(
    read(DRACUT, 'cfsboot-mount.sh'),
    /^\s*cfsboot_mount\s*$/m,
    'the shell hook calls cfsboot_mount',
  )
  assert.match(
    read(DRACUT, 'cfsboot-setup-root.sh'),
    /^\s*cfsboot_mount\s*$/m,
    'the systemd unit script calls it',
  )
})
