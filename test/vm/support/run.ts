/**
 * Runs one program in the VM by hand, for writing and debugging guest programs:
 *
 *   node dist/test/vm/support/run.js [--env NAME=value]... [--timeout ms] [--cpus n] [--quiet] -- /usr/bin/node dist/test/vm/guest/x.js args...
 *
 * The program runs in the current directory, so relative paths work as on
 * the host. Prints the program's output, then the console log and where the
 * run's files are (kept: remove the run dir when done), and exits with the
 * program's status. `--quiet` prints only the program's output and removes
 * the run dir when the program succeeded (the demo uses it).
 */
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { runInVm, VmRunError } from './qemu.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    env: { type: 'string', multiple: true, default: [] },
    timeout: { type: 'string' },
    cpus: { type: 'string' },
    memory: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
});

const env: Record<string, string> = {};
for (const pair of values.env) {
  const eq = pair.indexOf('=');
  if (eq <= 0) throw new Error(`--env wants NAME=value, got ${pair}`);
  env[pair.slice(0, eq)] = pair.slice(eq + 1);
}

try {
  const result = await runInVm({
    argv: positionals,
    env,
    cwd: process.cwd(),
    hostPaths: [process.cwd()],
    ...(values.timeout ? { timeoutMs: Number(values.timeout) } : {}),
    ...(values.cpus ? { cpus: Number(values.cpus) } : {}),
    ...(values.memory ? { memoryMiB: Number(values.memory) } : {}),
  });
  process.stdout.write(result.output);
  if (values.quiet && result.exitCode === 0) {
    rmSync(result.runDir, { recursive: true, force: true });
  } else {
    process.stderr.write(`--- console ---\n${result.console}\n`);
    process.stderr.write(
      `--- exit status ${result.exitCode}, boot ${Math.round(result.bootMs)} ms, total ${Math.round(result.totalMs)} ms, files in ${result.runDir}\n`,
    );
  }
  process.exitCode = result.exitCode;
} catch (err) {
  if (err instanceof VmRunError) process.stderr.write(`${err.output}\n${err.describe()}\n`);
  else throw err;
  process.exitCode = 125;
}
