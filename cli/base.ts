// The base of every cfsboot command: turns any error into exactly one line on stderr and the
// documented exit code (docs/exit-codes.md), never a stack trace (CFSBOOT_DEBUG=1 prints one).
// oclif's own rendering wraps long messages over several lines, so errors we raise are printed
// here; oclif still renders its own usage errors (exit 2).
import {Command, Errors} from '@oclif/core'

import {errorReport} from './error-report.js'

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
    const report = errorReport(err)
    if (this.jsonEnabled()) this.logJson({error: report})
    process.stderr.write(`Error: ${report.message}\n`)
    process.exitCode = report.exitCode
    return undefined
  }
}
