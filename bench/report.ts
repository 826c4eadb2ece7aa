/** How benchmarks report: medians of rounds, ratios, seconds and milliseconds, sizes in MiB. */

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** ours / theirs, as the READMEs print it. */
export const ratio = (ours: number, theirs: number): string => `${(ours / theirs).toFixed(2)}×`;

export const s = (seconds: number): string => `${seconds.toFixed(2)} s`;

export const ms = (seconds: number): string => `${(seconds * 1000).toFixed(0)} ms`;
