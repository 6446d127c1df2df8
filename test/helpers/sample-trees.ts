// Small trees that exercise every part of the image format, for reader and fuzz tests.
import {
  FsNode,
  objectPath,
  S_IFBLK,
  S_IFCHR,
  S_IFDIR,
  S_IFIFO,
  S_IFLNK,
  S_IFREG,
  S_IFSOCK,
} from '../../src/tree/node.js'

const T0 = 1_700_000_000

function node(mode: number, mtimeSec = T0): FsNode {
  const n = new FsNode(mode)
  n.mtimeSec = mtimeSec
  n.nlink = 1
  return n
}

export function dir(mtimeSec = T0): FsNode {
  return node(S_IFDIR | 0o755, mtimeSec)
}

export function inlineFile(content: string | Buffer, mtimeSec = T0): FsNode {
  const f = node(S_IFREG | 0o644, mtimeSec)
  f.content = typeof content === 'string' ? Buffer.from(content, 'latin1') : content
  f.size = f.content.length
  return f
}

/** A file whose content is an object: digest filled with `fill`. */
export function externalFile(size: number, fill: number, mtimeSec = T0): FsNode {
  const f = node(S_IFREG | 0o644, mtimeSec)
  f.size = size
  f.digest = Buffer.alloc(32, fill)
  f.payload = objectPath(f.digest)
  return f
}

export function symlink(target: string, mtimeSec = T0): FsNode {
  const l = node(S_IFLNK | 0o777, mtimeSec)
  l.payload = target
  l.size = target.length
  return l
}

export function hardlink(to: FsNode): FsNode {
  const l = new FsNode()
  l.linkTo = to
  return l
}

/**
 * Directories (nested, one with several blocks of entries), short and long symlinks,
 * hardlinks, inline/shared/escaped xattrs, inline files (tail-packed and spanning a block),
 * object-backed files, devices, a fifo, a socket, a whiteout, compact and extended inodes.
 */
export function richTree(): FsNode {
  const root = dir()
  root.setXattr('security.selinux', Buffer.from('system_u:object_r:root_t:s0\0'))
  const etc = dir(T0 + 10)
  root.addChild('etc', etc)
  const hosts = inlineFile('127.0.0.1 localhost\n')
  hosts.setXattr('user.note', Buffer.from('a=b'))
  hosts.setXattr('security.selinux', Buffer.from('system_u:object_r:etc_t:s0\0'))
  etc.addChild('hosts', hosts)
  etc.addChild('hosts.link', hardlink(hosts))
  const passwd = inlineFile('root:x:0:0::/root:/bin/sh\n', T0 + 5)
  passwd.setXattr('security.selinux', Buffer.from('system_u:object_r:etc_t:s0\0'))
  passwd.setXattr('trusted.overlay.custom', Buffer.from('escaped'))
  etc.addChild('passwd', passwd)
  etc.addChild('mid', inlineFile(Buffer.alloc(4500, 0x41)))

  const usr = dir()
  root.addChild('usr', usr)
  const bin = dir()
  usr.addChild('bin', bin)
  const sh = externalFile(123456, 0xab)
  sh.mode = S_IFREG | 0o755
  sh.uid = 70000 // needs an extended inode
  // The first name in name order holds the inode (as a reader rebuilds it), so that writing
  // what the reader returns gives the same bytes again.
  bin.addChild('bash', sh)
  bin.addChild('sh', hardlink(sh))
  bin.addChild('ls', externalFile(4096, 0xcd, T0 + 1))
  bin.addChild('rel', symlink('sh'))
  bin.addChild('long', symlink('x/'.repeat(1500) + 'end'))
  const many = dir()
  usr.addChild('share', many)
  for (let i = 0; i < 300; i++)
    many.addChild(`entry-with-a-fairly-long-name-${String(i).padStart(4, '0')}`, inlineFile(`${i}`))

  const dev = dir()
  root.addChild('dev', dev)
  const sda = node(S_IFBLK | 0o660)
  sda.rdev = (8 << 8) | 1
  dev.addChild('sda1', sda)
  const tty = node(S_IFCHR | 0o620)
  tty.rdev = (4 << 8) | 1
  dev.addChild('tty1', tty)
  dev.addChild('fifo', node(S_IFIFO | 0o600))
  dev.addChild('sock', node(S_IFSOCK | 0o600))
  dev.addChild('gone', node(S_IFCHR | 0o000)) // a whiteout (0:0)
  root.addChild('empty', inlineFile(''))
  let deep = root
  for (let i = 0; i < 20; i++) {
    const d = dir()
    deep.addChild(`d${i}`, d)
    deep = d
  }
  deep.addChild('leaf', externalFile(10, 0x01))
  return root
}

/** A tiny tree: root, one dir, one inline file, one object-backed file, one symlink, one hardlink. */
export function smallTree(): FsNode {
  const root = dir()
  const a = dir()
  root.addChild('a', a)
  const f = inlineFile('hello\n')
  f.setXattr('user.x', Buffer.from('1'))
  a.addChild('f', f)
  a.addChild('g', hardlink(f))
  root.addChild('big', externalFile(9000, 0x42))
  root.addChild('s', symlink('a/f'))
  return root
}
