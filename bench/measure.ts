/** What the snapshotter benchmarks measure with: wall time, a settled disk, and a process's peak RSS. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../test/support/command.js';
import { until } from '../test/support/until.js';

/** Seconds `run` took, wall clock. */
export async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return secondsSince(start);
}

/**
 * Before a side is timed: waits until the integrity snapshotter at
 * `snapshotterRoot` has deleted the upper dirs its last pull discarded
 * (service/deferred-removal.ts, a few seconds after the pull), then writes
 * everything the page cache holds to disk (sync(1)). Without it a side pays
 * for what the one before it left behind: writeback, and on a file system
 * mounted with `discard` the trims of the thousands of files deleted — by
 * overlayfs's image removal or by that deferred deletion — which the first
 * fsync of the next side waits for. Neither deletion is timed, as neither
 * runs while a pull or a start is measured.
 */
export async function settleDisk(snapshotterRoot: string): Promise<void> {
  const snapshots = join(snapshotterRoot, 'snapshots');
  await until('the deferred deletions of the integrity snapshotter', () => (readdirSync(snapshots).some((n) => n.startsWith('rm-')) ? undefined : true), 120_000);
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
