/**
 * What every VM test file needs: tests that skip with the reason when the VM
 * cannot run here, the host path of a compiled guest program, runs whose
 * files are removed when the test ends, and a guest program's report.
 */
import test, { type ExecutionContext } from 'ava';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUEST_RESULTS_DIR, runInVm, vmAvailable, type VmRunOptions, type VmRunResult } from './qemu.js';

const available = vmAvailable();

/**
 * `test.serial`, or `test.skip` with the missing prerequisite in the title.
 * Serial because each VM keeps a host core busy, and the machine has two.
 */
export function vmTest(title: string, implementation: (t: ExecutionContext) => Promise<void>): void {
  if (available.ok) test.serial(title, implementation);
  else test.skip(`${title} (no VM: ${available.reason})`, implementation);
}

/** The compiled guest program `name` (e.g. "verity-smoke"), as the guest sees it: the same path as on the host. */
export function guestProgram(name: string): string {
  return fileURLToPath(new URL(`../guest/${name}.js`, import.meta.url));
}

/** runInVm, logging the times, with the run's files removed after the test. */
export async function runInVmForTest(t: ExecutionContext, options: VmRunOptions): Promise<VmRunResult> {
  const result = await runInVm(options);
  t.teardown(() => rmSync(result.runDir, { recursive: true, force: true }));
  t.log(`boot ${Math.round(result.bootMs)} ms, total ${Math.round(result.totalMs)} ms`);
  return result;
}

/**
 * Runs guest program `name`, which takes the path of its report as its only
 * argument; it must run to its end (exit 0, else its output is the failure),
 * and its report (`<name>.json`, parsed) is what the test then judges.
 */
export async function runGuestReport<Report>(t: ExecutionContext, name: string, timeoutMs: number): Promise<Report> {
  const report = `${name}.json`;
  const result = await runInVmForTest(t, { argv: [process.execPath, guestProgram(name), join(GUEST_RESULTS_DIR, report)], timeoutMs });
  t.is(result.exitCode, 0, result.output);
  return JSON.parse(readFileSync(join(result.resultsDir, report), 'utf8')) as Report;
}
