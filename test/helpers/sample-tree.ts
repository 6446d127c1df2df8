// The sample root filesystem, completed with what git cannot carry.
//
// examples/sample-rootfs/ holds the files git keeps (contents, exec bits, symlinks). A test
// gets the full tree from makeSampleTree(dir): a copy of the example plus owners, devices, a
// fifo, a socket, hardlinks, setuid/setgid/sticky bits, xattrs in every namespace (user,
// trusted, security, system ACLs, and one on a symlink), a name that is not UTF-8, a file
// over 128 KiB (generated, so the repository stays small), empty directories and fixed
// mtimes with nanoseconds. Needs root (mknod, chown, trusted.* xattrs).

import {execFileSync} from 'node:child_process'
import {createHash} from 'node:crypto'
import {chmodSync, chownSync, linkSync, lchownSync, mkdirSync, symlinkSync, writeFileSync} from 'node:fs'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'

import {isRoot} from './tools.js'

/** The repository's root (this file runs from dist/test/helpers/). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..')
export const SAMPLE_ROOTFS = join(REPO_ROOT, 'examples/sample-rootfs')

/** A name that is not valid UTF-8 ("café" in latin1), as raw bytes relative to the tree. */
export const NON_UTF8_NAME = Buffer.from('usr/share/doc/caf\xe9.txt', 'latin1')

/** Why makeSampleTree cannot run here, or false. */
export function sampleTreeSkip(): string | false {
  if (!isRoot()) return 'the full sample tree needs root (devices, owners, trusted.* xattrs)'
  for (const tool of ['mknod', 'setfattr', 'touch', 'cp']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], {stdio: 'ignore'})
    } catch {
      return `${tool} is not installed (Debian package ${tool === 'setfattr' ? 'attr' : 'coreutils'})`
    }
  }
  return false
}

/** Deterministic pseudo-random bytes (SHA-256 in counter mode): the same file everywhere. */
export function deterministicBytes(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size)
  for (let off = 0, i = 0; off < size; off += 32, i++) {
    createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off)
  }
  return out
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, {stdio: ['ignore', 'ignore', 'pipe']})
}

function setXattr(path: string, name: string, hexValue: string, noFollow = false): void {
  sh('setfattr', [...(noFollow ? ['-h'] : []), '-n', name, '-v', `0x${hexValue}`, path])
}

/** Mtimes used by the sample tree (seconds.nanoseconds). */
export const SAMPLE_MTIME = '1700000000.123456789'
export const SAMPLE_MTIME_OLD = '1234567890.000000001'
export const SAMPLE_MTIME_LATE = '2000000000.999999999'

/** A POSIX ACL value (version 2): user::rwx, user:1234:r-x, group::r--, mask::r-x, other::r--. */
const ACL_ACCESS =
  '02000000' +
  '01000700ffffffff' +
  '02000500d2040000' +
  '04000400ffffffff' +
  '10000500ffffffff' +
  '20000400ffffffff'
/** A default ACL for a directory: user::rwx, group::r-x, other::r-x. */
const ACL_DEFAULT = '02000000' + '01000700ffffffff' + '04000500ffffffff' + '20000500ffffffff'
/** security.capability (VFS_CAP_REVISION_2) granting cap_net_raw (bit 13), permitted + effective. */
const CAP_NET_RAW = '01000002' + '00200000' + '00000000' + '00000000' + '00000000'

export function makeSampleTree(dir: string): void {
  const skip = sampleTreeSkip()
  if (skip) throw new Error(skip)
  mkdirSync(dir, {recursive: true})
  sh('cp', ['-a', '--no-preserve=ownership', `${SAMPLE_ROOTFS}/.`, dir])
  const p = (rel: string): string => join(dir, rel)

  // Empty directories, including the classic sticky /tmp.
  for (const d of ['dev', 'proc', 'sys', 'run', 'tmp', 'var/empty', 'var/lib/sample', 'home/user']) {
    mkdirSync(p(d), {recursive: true})
  }
  chmodSync(p('tmp'), 0o1777)
  chmodSync(p('var/empty'), 0o555)

  // Devices, a fifo and a socket.
  sh('mknod', ['-m', '666', p('dev/null'), 'c', '1', '3'])
  sh('mknod', ['-m', '660', p('dev/sda'), 'b', '8', '0'])
  // A minor number above 255 and a large major: exercises the dev_t encoding.
  sh('mknod', ['-m', '600', p('dev/odd'), 'c', '511', '70000'])
  sh('mknod', ['-m', '644', p('run/initctl'), 'p'])
  execFileSync(process.execPath, [
    '-e',
    `const s=require('net').createServer().listen(process.argv[1],()=>process.exit(0))`,
    p('run/sample.sock'),
  ])

  // A file over 128 KiB (several EROFS chunks' worth of pages), and one of exactly 4 KiB.
  writeFileSync(p('usr/lib/cfsboot-sample/large.bin'), deterministicBytes(200_000, 'large'))
  writeFileSync(p('usr/lib/cfsboot-sample/page.bin'), deterministicBytes(4096, 'page'))

  // Hardlinks: a pair of an external file, and three names of a small (inline) one.
  linkSync(p('usr/bin/hello'), p('usr/bin/hello-again'))
  writeFileSync(p('etc/tiny'), 'tiny\n')
  linkSync(p('etc/tiny'), p('etc/tiny-link1'))
  linkSync(p('etc/tiny'), p('usr/lib/cfsboot-sample/tiny-link2'))

  // setuid / setgid programs.
  writeFileSync(
    p('usr/bin/su-sample'),
    '#!/bin/sh\n# pretends to be a setuid program\nid\n' + '#'.repeat(80) + '\n',
  )
  chmodSync(p('usr/bin/su-sample'), 0o4755)
  writeFileSync(
    p('usr/bin/wall-sample'),
    '#!/bin/sh\n# pretends to be a setgid program\n' + '#'.repeat(80) + '\n',
  )
  chmodSync(p('usr/bin/wall-sample'), 0o2755)

  // Owners other than root.
  chownSync(p('home/user'), 1234, 1234)
  writeFileSync(
    p('home/user/notes.txt'),
    'owned by 1234:1234, longer than the inline limit of sixty-four bytes.\n',
  )
  chownSync(p('home/user/notes.txt'), 1234, 1234)
  symlinkSync('notes.txt', p('home/user/notes-link'))
  lchownSync(p('home/user/notes-link'), 1234, 4321)
  chownSync(p('dev/sda'), 0, 6)

  // A name that is not UTF-8, with content long enough to be stored as an object.
  writeFileSync(
    Buffer.concat([Buffer.from(dir + '/'), NON_UTF8_NAME]),
    'this file has a latin1 name; its content is well over sixty-four bytes long, so it is an object.\n',
  )

  // Extended attributes in every namespace.
  setXattr(p('usr/bin/hello'), 'user.sample.origin', Buffer.from('examples').toString('hex'))
  setXattr(p('usr/bin/hello'), 'user.empty', '')
  setXattr(p('usr/bin/su-sample'), 'security.capability', CAP_NET_RAW)
  setXattr(p('usr/lib/cfsboot-sample'), 'trusted.sample', 'deadbeef')
  setXattr(p('usr/lib/cfsboot-sample/config.ini'), 'system.posix_acl_access', ACL_ACCESS)
  setXattr(p('var/lib/sample'), 'system.posix_acl_default', ACL_DEFAULT)
  setXattr(p('etc/localtime'), 'trusted.on-a-symlink', '01', true)
  setXattr(p('etc/tiny'), 'user.shared-by-hardlinks', '02')
  setXattr(
    p('usr/lib/cfsboot-sample/large.bin'),
    'user.big-value',
    deterministicBytes(2000, 'xattr').toString('hex'),
  )
  setXattr(dir, 'user.root-of-tree', '03')

  // Fixed mtimes with nanoseconds: everything, then a few specials; parents last.
  sh('sh', ['-c', 'find "$1" -depth -exec touch -h -d "@$2" {} +', 'sh', dir, SAMPLE_MTIME])
  sh('touch', ['-h', '-d', `@${SAMPLE_MTIME_OLD}`, p('usr/lib/cfsboot-sample/empty'), p('bin')])
  sh('touch', ['-h', '-d', `@${SAMPLE_MTIME_LATE}`, p('etc/os-release')])
  sh('touch', [
    '-h',
    '-d',
    `@${SAMPLE_MTIME}`,
    p('usr/lib/cfsboot-sample'),
    p('usr/lib'),
    p('etc'),
    p(''),
    dir,
  ])
}
