/**
 * integrityctl commands run inside the test process: the binary's command
 * registry, option parsing, actions and error reporting, with stdout, stderr
 * and the exit status the binary would have, but without starting node for
 * every call: starting node and loading a command costs seconds in the TCG
 * VM, so VM guest programs pay it once.
 * Calls run one at a time: output is captured by swapping process.stdout and
 * process.stderr writes.
 */
import { Command, CommanderError } from 'commander';
import { loadCommands } from '../../snapshotter/cli/commands.js';

export interface CliResult {
  /** What the process would exit with. */
  status: number;
  stdout: string;
  stderr: string;
}

let queue: Promise<unknown> = Promise.resolve();

/** `integrityctl <args>`, e.g. runCli(['layer', 'mount', image, dir, '--root-hash', hash]). */
export function runCli(args: readonly string[]): Promise<CliResult> {
  const run = queue.then(() => runOnce(args));
  queue = run.catch(() => undefined);
  return run;
}

async function runOnce(args: readonly string[]): Promise<CliResult> {
  // The same settings as snapshotter/cli/main.ts, plus no process.exit on usage errors.
  const program = new Command('integrityctl').showHelpAfterError().enablePositionalOptions().exitOverride();
  for (const register of await loadCommands(args)) register(program);
  let stdout = '';
  let stderr = '';
  program.configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  const writes = { out: process.stdout.write, err: process.stderr.write };
  const capture = (append: (s: string) => void) =>
    ((chunk: string | Uint8Array, ...rest: unknown[]) => {
      append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const callback = rest.find((r): r is () => void => typeof r === 'function');
      callback?.();
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture((s) => (stdout += s));
  process.stderr.write = capture((s) => (stderr += s));
  const exitCodeBefore = process.exitCode;
  process.exitCode = undefined;
  let status: number;
  try {
    await program.parseAsync(['node', 'integrityctl', ...args]);
    status = Number(process.exitCode ?? 0);
  } catch (err) {
    if (!(err instanceof CommanderError)) throw err;
    status = err.exitCode;
  } finally {
    process.stdout.write = writes.out;
    process.stderr.write = writes.err;
    process.exitCode = exitCodeBefore;
  }
  return { status, stdout, stderr };
}
