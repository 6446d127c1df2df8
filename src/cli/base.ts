// The base of every cfsboot command: turns any error into one line on stderr and the
// documented exit code (docs/exit-codes.md), never a stack trace (set CFSBOOT_DEBUG=1 for one).
import {Command, Errors} from '@oclif/core'

import {CfsError, ExitCode, oneLine} from '../errors.js'

export abstract class BaseCommand extends Command {
  protected override async catch(err: Error & {exitCode?: number}): Promise<unknown> {
    // oclif's own errors (flag parsing, this.error, exit) already carry what to print.
    if (err instanceof Errors.CLIError || (err as {oclif?: unknown}).oclif) return super.catch(err)
    if (process.env.CFSBOOT_DEBUG) console.error(err)
    const exit = err instanceof CfsError ? err.exitCode : ExitCode.Failure
    return super.catch(new Errors.CLIError(oneLine(err), {exit}))
  }
}
