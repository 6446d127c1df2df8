// Typed errors. Every failure the user can cause (bad input, wrong digest, missing capability)
// is a CfsError with a stable `code` and the process exit code it maps to; the CLI prints its
// message as one line. Anything else reaching the CLI is a bug and exits with 1.

export const ExitCode = {
  /** Unexpected failure (a bug, or an I/O error we did not anticipate). */
  Failure: 1,
  /** Wrong usage: bad flags or arguments (oclif's own parse errors use 2 as well). */
  Usage: 2,
  /** The input is invalid: a broken image, a hostile or malformed dump, a bad path. */
  BadInput: 3,
  /** Verification failed: a digest differs from the expected one. */
  Verification: 4,
  /** The machine lacks a capability or a tool (e.g. fs-verity, a mount type). */
  Unsupported: 5,
  /** Damage was found (fsck) or objects are missing. */
  Damage: 6,
} as const

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode]

/**
 * Every error code cfsboot prints (`--json`: `{error: {code, message, exitCode}}`), each with
 * its one exit code. docs/exit-codes.md lists the same table (test/errors.test.ts compares
 * them); a new code goes in both.
 */
export const ERROR_CODES = {
  EFAILURE: {
    exit: ExitCode.Failure,
    meaning: 'an unexpected error (a bug, or an I/O error nobody anticipated)',
  },
  ETOOL: {exit: ExitCode.Failure, meaning: 'an external tool failed, timed out or printed nonsense'},
  EDRACUT: {exit: ExitCode.Failure, meaning: 'dracut failed to build the initramfs'},
  EVERITY: {
    exit: ExitCode.Failure,
    meaning: '`fsverity enable` failed for a reason other than missing support',
  },
  ESCAN: {exit: ExitCode.Failure, meaning: 'the source tree could not be read while building'},
  ELOCK: {exit: ExitCode.Failure, meaning: 'the deployment lock could not be taken'},
  ELOCKED: {exit: ExitCode.Failure, meaning: 'another cfsboot command held the lock past --lock-timeout'},
  ENOROLLBACK: {exit: ExitCode.Failure, meaning: 'rollback: there is no other deployment'},
  EBOOTED: {exit: ExitCode.Failure, meaning: 'undeploy: refusing to remove the booted deployment'},
  ELAST: {exit: ExitCode.Failure, meaning: 'undeploy: refusing to remove the only bootable deployment'},
  ENOSPC: {exit: ExitCode.Failure, meaning: 'deploy: the disk is full; the deploy was undone'},
  EPARTITIONS: {
    exit: ExitCode.Failure,
    meaning: 'install: the partition table or its devices are not what was written',
  },
  EINTERRUPTED: {
    exit: ExitCode.Failure,
    meaning: 'install: interrupted by a signal; cleaned up, the target is incomplete',
  },
  EDEBUGFS: {exit: ExitCode.Failure, meaning: 'debugfs failed while pre-sealing fs-verity on an install'},
  EREMOTE: {
    exit: ExitCode.Failure,
    meaning: 'a remote failed: unreachable, HTTP error, stalled, truncated or denied',
  },
  EUSAGE: {exit: ExitCode.Usage, meaning: 'flags that do not go together, or a missing one'},
  ENOTCONFIRMED: {exit: ExitCode.Usage, meaning: 'install: the erase was not confirmed; nothing was written'},
  EINVALID: {
    exit: ExitCode.BadInput,
    meaning: 'invalid input: a broken or hostile image or dump, a bad path, flag value or configuration',
  },
  EMOUNTPOINT: {
    exit: ExitCode.BadInput,
    meaning: 'mount: the mount point already has something mounted on it',
  },
  ENOTBLK: {exit: ExitCode.BadInput, meaning: 'install target refused: not a block device'},
  EBLOCKDEV: {
    exit: ExitCode.BadInput,
    meaning: 'install target refused: a block device given as --via-loopback FILE',
  },
  EPARTITION: {
    exit: ExitCode.BadInput,
    meaning: 'install target refused: a partition, not a whole disk (--force overrides)',
  },
  EMOUNTED: {
    exit: ExitCode.BadInput,
    meaning: 'install target refused: it (or a partition of it) is mounted or active swap',
  },
  EINUSE: {
    exit: ExitCode.BadInput,
    meaning: 'install target refused: held by device-mapper, RAID, a loop device or the kernel',
  },
  EROOTDISK: {exit: ExitCode.BadInput, meaning: 'install target refused: it holds the running system'},
  EHASDATA: {
    exit: ExitCode.BadInput,
    meaning: 'install target refused: it holds data (--wipe overrides for disks)',
  },
  ETOOSMALL: {exit: ExitCode.BadInput, meaning: 'install target refused: too small for the image'},
  EESPAMBIGUOUS: {
    exit: ExitCode.BadInput,
    meaning: "two ESPs hold cfsboot files or carry cfsboot's partition name; --boot-dir picks one",
  },
  ENOTDEVICE: {exit: ExitCode.BadInput, meaning: 'not a booted cfsboot system and no --sysroot given'},
  EDIGEST: {exit: ExitCode.Verification, meaning: 'a digest differs from the expected one'},
  ESIGNATURE: {
    exit: ExitCode.Verification,
    meaning:
      'a release index not signed by a trusted key, or an image naming objects its signed index does not list',
  },
  EUNSUPPORTED: {
    exit: ExitCode.Unsupported,
    meaning: 'this machine cannot do it: a missing kernel feature or tool',
  },
  ENOESP: {
    exit: ExitCode.Unsupported,
    meaning: 'deployment commands: no ESP (boot loader partition) found on the device',
  },
  EESPMOUNT: {exit: ExitCode.Unsupported, meaning: 'the ESP could not be mounted for the operation'},
  EREADONLY: {exit: ExitCode.Unsupported, meaning: 'the physical root or the ESP is mounted read-only'},
  EDAMAGE: {exit: ExitCode.Damage, meaning: 'damage or missing data: objects are missing or corrupt'},
} as const satisfies Record<string, {exit: ExitCodeValue; meaning: string}>

export type ErrorCode = keyof typeof ERROR_CODES

/** The codes that refuse an install target: all exit alike (3, like any other bad input). */
export type TargetRefusal =
  'ENOTBLK' | 'EBLOCKDEV' | 'EPARTITION' | 'EMOUNTED' | 'EINUSE' | 'EROOTDISK' | 'EHASDATA' | 'ETOOSMALL'

export class CfsError extends Error {
  readonly code: ErrorCode
  readonly exitCode: ExitCodeValue
  readonly data: Record<string, unknown>

  constructor(code: ErrorCode, message: string, data: Record<string, unknown> = {}) {
    super(message)
    this.name = 'CfsError'
    this.code = code
    this.exitCode = ERROR_CODES[code].exit
    this.data = data
  }
}

/** Invalid input: images, dumps, trees, names. */
export class InvalidInputError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EINVALID', message, data)
    this.name = 'InvalidInputError'
  }
}

/** A digest did not match what was expected. */
export class DigestMismatchError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EDIGEST', message, data)
    this.name = 'DigestMismatchError'
  }
}

/** The kernel or the machine cannot do what was asked. */
export class UnsupportedError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EUNSUPPORTED', message, data)
    this.name = 'UnsupportedError'
  }
}

/** Objects or files are missing or damaged. */
export class DamageError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EDAMAGE', message, data)
    this.name = 'DamageError'
  }
}

/** One line for any error: our own message, or the system error's code and message. */
export function oneLine(err: unknown): string {
  if (err instanceof CfsError) return err.message
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code
    const msg = err.message.split('\n')[0] ?? ''
    return code && !msg.startsWith(code) ? `${code}: ${msg}` : msg
  }
  return String(err)
}
