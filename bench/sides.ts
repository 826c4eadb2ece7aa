/** The two sides every snapshotter benchmark compares, the order a round runs them in, and their ratio. */
import { pairedRatio } from './report.js';

export type Side = 'overlayfs' | 'integrity';

export const SIDES: readonly Side[] = ['overlayfs', 'integrity'];

/** Round 1 starts with overlayfs, round 2 with integrity, …: neither side always inherits the other's cache and writeback state. */
export function sidesInOrder(round: number): readonly Side[] {
  return round % 2 ? SIDES : [...SIDES].reverse();
}

/** integrity / overlayfs over `rounds`, each side's value of a round given by `of` (report.ts, pairedRatio). */
export function integrityOverOverlayfs<R>(rounds: readonly R[], of: (round: R, side: Side) => number): string {
  return pairedRatio(rounds.map((round) => ({ ours: of(round, 'integrity'), theirs: of(round, 'overlayfs') })));
}

export interface BenchOptions {
  /** Counted rounds, after one warm-up round. */
  rounds: number;
  /** Container starts per side and round. */
  runs: number;
}
