// The lock that serialises every state-changing command on a sysroot.
//
// Node has no flock(2), so util-linux's `flock` takes it for us on a file descriptor we pass
// down: flock locks belong to the open file description, which we keep open, so the lock stays
// held after the helper exits and is released by the kernel when this process exits or dies
// (kill -9 included). No stale lock files, no PID guessing.

import {spawn} from 'node:child_process'
import {closeSync, openSync} from 'node:fs'

import {CfsError} from '../errors.js'

export interface Lock {
  release(): void
}

export interface LockOptions {
  /** Seconds to wait for another command to finish; 0 fails at once. */
  timeout?: number
  /** Called once if we have to wait, to tell the user why nothing happens. */
  onWait?: () => void
}

async function tryFlock(fd: number, waitSeconds: number | null): Promise<boolean> {
  const args =
    waitSeconds === null
      ? ['--exclusive', '--nonblock', '3']
      : ['--exclusive', '--wait', String(waitSeconds), '3']
  // execa cannot hand down an extra descriptor, so this one call uses child_process directly.
  const {code, stderr} = await new Promise<{code: number | null; stderr: string}>((resolve, reject) => {
    const child = spawn('flock', args, {stdio: ['ignore', 'ignore', 'pipe', fd]})
    let err = ''
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
    child.on('error', reject)
    child.on('close', (c) => resolve({code: c, stderr: err}))
  })
  if (code === 0) return true
  if (code === 1) return false
  throw new CfsError('ELOCK', `cannot take the lock: ${stderr.split('\n')[0] || `flock exited with ${code}`}`)
}

export async function acquireLock(path: string, opts: LockOptions = {}): Promise<Lock> {
  const fd = openSync(path, 'a', 0o600)
  try {
    if (!(await tryFlock(fd, null))) {
      const timeout = opts.timeout ?? 300
      opts.onWait?.()
      if (timeout <= 0 || !(await tryFlock(fd, timeout))) {
        throw new CfsError('ELOCKED', `another cfsboot command holds ${path} (waited ${timeout} s)`)
      }
    }
  } catch (err) {
    closeSync(fd)
    throw err
  }
  let held = true
  return {
    release() {
      if (held) closeSync(fd)
      held = false
    },
  }
}

/** Runs `fn` holding the lock at `path`; released however `fn` ends. */
export async function withLock<T>(path: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(path, opts)
  try {
    return await fn()
  } finally {
    lock.release()
  }
}
