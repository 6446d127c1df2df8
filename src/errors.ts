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

export class CfsError extends Error {
  readonly code: string
  readonly exitCode: ExitCodeValue
  readonly data: Record<string, unknown>

  constructor(
    code: string,
    message: string,
    exitCode: ExitCodeValue = ExitCode.Failure,
    data: Record<string, unknown> = {},
  ) {
    super(message)
    this.name = 'CfsError'
    this.code = code
    this.exitCode = exitCode
    this.data = data
  }
}

/** Invalid input: images, dumps, trees, names. */
export class InvalidInputError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EINVALID', message, ExitCode.BadInput, data)
    this.name = 'InvalidInputError'
  }
}

/** A digest did not match what was expected. */
export class DigestMismatchError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EDIGEST', message, ExitCode.Verification, data)
    this.name = 'DigestMismatchError'
  }
}

/** The kernel or the machine cannot do what was asked. */
export class UnsupportedError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EUNSUPPORTED', message, ExitCode.Unsupported, data)
    this.name = 'UnsupportedError'
  }
}

/** Objects or files are missing or damaged. */
export class DamageError extends CfsError {
  constructor(message: string, data: Record<string, unknown> = {}) {
    super('EDAMAGE', message, ExitCode.Damage, data)
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
