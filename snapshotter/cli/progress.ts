/**
 * A one-line progress bar on stderr, redrawn at most every 100 ms, drawn only
 * when a person is watching: stdout and stderr both terminals. A command whose
 * output goes to a file or a pipe, or whose stderr is logged, shows none.
 */
export interface Progress {
  /** `done` of `total` units (bytes); total may change between calls. */
  update(done: number, total: number): void;
  /** Clears the line. */
  finish(): void;
}

const WIDTH = 30;
const INTERVAL_MS = 100;

export function createProgress(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
  stdoutIsTerminal: boolean = process.stdout.isTTY === true,
): Progress {
  if (!stream.isTTY || !stdoutIsTerminal) return { update() {}, finish() {} };
  let last = 0;
  let drawn = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (now - last < INTERVAL_MS && done < total) return;
      last = now;
      const fraction = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(fraction * WIDTH);
      stream.write(`\r${label} [${'#'.repeat(filled)}${' '.repeat(WIDTH - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}/${formatBytes(total)}\u001b[K`);
      drawn = true;
    },
    finish() {
      if (drawn) stream.write('\r\u001b[K');
      drawn = false;
    },
  };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
