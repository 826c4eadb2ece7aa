/**
 * Every command's action goes through here, so errors look the same
 * everywhere: one line naming what failed, one line saying what to do, and an
 * exit status that scripts can rely on (1 = check or operation failed,
 * 2 = bad input or usage).
 */
import { IntegrityError, InvalidArgumentError } from '../core/errors.js';

export const ExitCode = { OK: 0, FAILED: 1, BAD_INPUT: 2 } as const;

export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | void> | number | void) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      process.exitCode = code ?? ExitCode.OK;
    } catch (err) {
      process.exitCode = reportError(err);
    }
  };
}

export function reportError(err: unknown): number {
  if (err instanceof IntegrityError) {
    process.stderr.write(`integrityctl: ${err.message}\n`);
    if (err.hint) process.stderr.write(`  hint: ${err.hint}\n`);
    if (process.env.INTEGRITY_DEBUG && err.cause) process.stderr.write(`  cause: ${String((err.cause as Error)?.stack ?? err.cause)}\n`);
    return err instanceof InvalidArgumentError ? ExitCode.BAD_INPUT : ExitCode.FAILED;
  }
  process.stderr.write(`integrityctl: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  return ExitCode.FAILED;
}
