/** The two sides every snapshotter benchmark compares, and the order a round runs them in. */

export type Side = 'overlayfs' | 'integrity';

export const SIDES: readonly Side[] = ['overlayfs', 'integrity'];

/** Round 1 starts with overlayfs, round 2 with integrity, …: neither side always inherits the other's cache and writeback state. */
export function sidesInOrder(round: number): readonly Side[] {
  return round % 2 ? SIDES : [...SIDES].reverse();
}

export interface BenchOptions {
  /** Counted rounds, after one warm-up round. */
  rounds: number;
  /** Container starts per side and round. */
  runs: number;
}
