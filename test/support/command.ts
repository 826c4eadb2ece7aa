/**
 * Runs a program for a test: an argument array (never a shell), a deadline
 * after which it is killed, and its output in the error when it fails.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  readonly file: string;
  readonly args: readonly string[];
  /** Exit status, or null when killed by a signal (also on timeout). */
  readonly exitCode: number | null;
  readonly stdout: string;
  readonly stderr: string;

  constructor(file: string, args: readonly string[], exitCode: number | null, result: CommandResult, why: string) {
    super(`${[file, ...args].join(' ')} ${why}${result.stderr.trim() ? `:\n${result.stderr.trim()}` : ''}`);
    this.name = 'CommandError';
    this.file = file;
    this.args = args;
    this.exitCode = exitCode;
    this.stdout = result.stdout;
    this.stderr = result.stderr;
  }
}

export interface CommandOptions {
  /** Killed (SIGKILL) after this long; default 60 s. */
  timeoutMs?: number;
  /** Written to stdin, which is then closed. */
  input?: string | Uint8Array;
}

export function runCommand(file: string, args: readonly string[], options: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const failure = err as Error & { code?: unknown; killed?: boolean; signal?: string | null };
      const why = failure.killed ? `timed out after ${timeoutMs} ms` :
        typeof failure.code === 'number' ? `exited with status ${failure.code}` :
        failure.signal ? `was killed by ${failure.signal}` : `could not run (${failure.message})`;
      reject(new CommandError(file, args, typeof failure.code === 'number' ? failure.code : null, { stdout, stderr }, why));
    });
    child.stdin?.end(options.input);
  });
}

/** The first of `programs` that is not an executable file, as a skip reason naming its package; undefined when all are there. */
export function missingPrograms(programs: Record<string, string>): string | undefined {
  for (const [path, debianPackage] of Object.entries(programs)) {
    try {
      accessSync(path, constants.X_OK);
    } catch {
      return `${path} is not installed (Debian package ${debianPackage})`;
    }
  }
  return undefined;
}
