/** What the snapshotter benchmarks measure with: wall time, a settled disk, and a process's peak RSS. */
import { readFileSync } from 'node:fs';
import { runCommand } from '../test/support/command.js';

/** Seconds `run` took, wall clock. */
export async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return secondsSince(start);
}

/**
 * Writes everything the page cache holds to disk (sync(1)) before a side is
 * timed. Without it a side pays for what the one before it left behind: the
 * writeback of its files and, on a file system mounted with `discard`, the
 * trims of the thousands of files its image removal deleted — which the
 * first fsync of the next side waits for.
 */
export async function settleDisk(): Promise<void> {
  await runCommand('sync', []);
}

export function secondsSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Peak resident memory of a running process (VmHWM), in MiB. */
export function peakRssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return hwm ? Number(hwm[1]) / 1024 : undefined;
}
