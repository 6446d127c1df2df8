// How the CLI reports a failure: one line on stderr (and the same under --json), with the error's
// code and exit code. Shared by BaseCommand (cli/base.ts) and the early paths (cli/early.ts),
// which must report a failure exactly as the commands do; kept apart from base.ts so the early
// paths need not load oclif.
import {CfsError, type ErrorCode, ExitCode, type ExitCodeValue, oneLine} from '../src/errors.js'

/** The report of any error: our own code and exit code, or EFAILURE (exit 1) for the rest. */
export function errorReport(err: unknown): {code: ErrorCode; message: string; exitCode: ExitCodeValue} {
  const ours = err instanceof CfsError
  return {
    code: ours ? err.code : 'EFAILURE',
    message: oneLine(err).replace(/\s*\n\s*/g, ' '),
    exitCode: ours ? err.exitCode : ExitCode.Failure,
  }
}
