// The base of every cfsboot command: turns any error into exactly one line on stderr and the
// documented exit code (docs/exit-codes.md), never a stack trace (CFSBOOT_DEBUG=1 prints one).
// oclif's own rendering wraps long messages over several lines, so errors we raise are printed
// here; oclif still renders its own usage errors (exit 2).
import {Command, Errors} from '@oclif/core'

import {CfsError, ExitCode, oneLine} from '../src/errors.js'

export abstract class BaseCommand extends Command {
  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    if (
      err instanceof Errors.CLIError ||
      err instanceof Errors.ExitError ||
      (err as {oclif?: unknown}).oclif
    ) {
      return super.catch(err)
    }
    if (process.env.CFSBOOT_DEBUG) console.error(err)
    const exit = err instanceof CfsError ? err.exitCode : ExitCode.Failure
    const message = oneLine(err).replace(/\s*\n\s*/g, ' ')
    if (this.jsonEnabled()) {
      this.logJson({error: {code: err instanceof CfsError ? err.code : 'EFAILURE', message, exitCode: exit}})
    }
    process.stderr.write(`Error: ${message}\n`)
    process.exitCode = exit
    return undefined
  }
}
