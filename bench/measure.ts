/** What the snapshotter benchmarks measure with: wall time and a process's peak RSS. */
import { readFileSync } from 'node:fs';

/** Seconds `run` took, wall clock. */
export async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return secondsSince(start);
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
