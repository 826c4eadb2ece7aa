/**
 * Wall-clock time in nanoseconds since the epoch.
 *
 * containerd's Go clients compare snapshot times with their own time.Now() at
 * nanosecond precision (created must not precede a time taken just before the
 * call), so millisecond `Date` values fail at random. The monotonic clock is
 * anchored once to the wall clock through performance.timeOrigin, which Node
 * takes with microsecond precision at start-up. CLOCK_MONOTONIC is slewed by
 * NTP like the wall clock, so the two only part when the wall clock is stepped;
 * a step of more than STEP_TOLERANCE_NS re-anchors to Date at millisecond precision.
 */
import { performance } from 'node:perf_hooks';

export type Clock = () => bigint;

const STEP_TOLERANCE_NS = 1_000_000_000n;
const NS_PER_MS = 1_000_000n;

export function wallClock(): Clock {
  const startHr = process.hrtime.bigint();
  let anchorWall = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000)) * 1000n;
  let anchorHr = startHr;
  return () => {
    const hr = process.hrtime.bigint();
    const now = anchorWall + (hr - anchorHr);
    const coarse = BigInt(Date.now()) * NS_PER_MS;
    const drift = now > coarse ? now - coarse : coarse - now;
    if (drift > STEP_TOLERANCE_NS) {
      anchorWall = coarse;
      anchorHr = hr;
      return coarse;
    }
    return now;
  };
}
