/** How benchmarks report: medians of rounds, ratios, seconds and milliseconds, sizes in MiB. */

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * ours / theirs over rounds that each timed both sides: the geometric mean of
 * the per-round ratios. With the sides alternating which goes first and an
 * even number of rounds, what the first or second place costs cancels out —
 * on the development VM the side timed second was up to 1.8× slower, whichever it was.
 */
export function pairedRatio(rounds: readonly { ours: number; theirs: number }[]): string {
  const logs = rounds.map((r) => Math.log(r.ours / r.theirs));
  return `${Math.exp(logs.reduce((a, b) => a + b, 0) / logs.length).toFixed(2)}×`;
}

export const s = (seconds: number): string => `${seconds.toFixed(2)} s`;

export const ms = (seconds: number): string => `${(seconds * 1000).toFixed(0)} ms`;
