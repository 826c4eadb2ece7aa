import test from 'ava';
import { wallClock } from '../../../snapshotter/core/clock.js';
import { fromTimestamp, toTimestamp } from '../../../snapshotter/core/proto.js';

test('the wall clock has sub-millisecond resolution and follows Date', (t) => {
  const clock = wallClock();
  const readings = Array.from({ length: 1000 }, () => clock());
  t.true(readings.some((ns) => ns % 1_000_000n !== 0n), 'not millisecond-truncated');
  for (let i = 1; i < readings.length; i++) t.true(readings[i]! >= readings[i - 1]!);
  const before = BigInt(Date.now() - 2) * 1_000_000n;
  const now = clock();
  const after = BigInt(Date.now() + 2) * 1_000_000n;
  t.true(before <= now && now <= after, `${before} <= ${now} <= ${after}`);
});

test('timestamps convert exactly, both ways, also before 1970', (t) => {
  for (const ns of [0n, 1n, 999_999_999n, 1_700_000_000_123_456_789n, -1n, -1_500_000_000n]) {
    t.is(fromTimestamp(toTimestamp(ns)), ns);
  }
  t.deepEqual(toTimestamp(1_700_000_000_123_456_789n), { seconds: '1700000000', nanos: 123456789 });
  t.deepEqual(toTimestamp(-1n), { seconds: '-1', nanos: 999_999_999 });
  t.is(fromTimestamp(null), 0n);
});
