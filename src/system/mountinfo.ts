// The one reader of /proc/self/mountinfo (proc(5)): what is mounted where, from which source,
// with which superblock device number and options. Used by mount/umount, the install safety
// checks and the ESP lookup.

import {readFile} from 'node:fs/promises'

export interface MountInfoEntry {
  /** "major:minor" of the filesystem's superblock. */
  devno: string
  mountPoint: string
  /** Per-mount options (ro/rw first). */
  options: string
  fsType: string
  source: string
  superOptions: string
}

/** mountinfo, /proc/mounts and /proc/swaps escape space, tab, newline and backslash as \ooo. */
export function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))
}

/** Parses mountinfo text: one entry per well-formed line, in the kernel's (mount) order. */
export function parseMountInfo(text: string): MountInfoEntry[] {
  const out: MountInfoEntry[] = []
  for (const line of text.split('\n')) {
    const f = line.split(' ')
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL…] - FSTYPE SOURCE SUPEROPTIONS
    const sep = f.indexOf('-')
    if (sep < 6 || f.length < sep + 4) continue
    out.push({
      devno: f[2]!,
      mountPoint: unescapeMount(f[4]!),
      options: f[5]!,
      fsType: f[sep + 1]!,
      source: unescapeMount(f[sep + 2]!),
      superOptions: f[sep + 3]!,
    })
  }
  return out
}

/** Every mount of this process's mount namespace. */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'latin1'))
}
