import test from 'ava';
import { createProgress, formatBytes } from '../../../snapshotter/cli/progress.js';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stream: { isTTY, write: (s: string) => writes.push(s) } as unknown as NodeJS.WriteStream };
}

test('draws a bar on a terminal and clears it when finished', (t) => {
  const { writes, stream } = fakeStream(true);
  const progress = createProgress('sealing', stream, true);
  progress.update(512 * 1024, 1024 * 1024);
  progress.update(1024 * 1024, 1024 * 1024); // the last update is always drawn
  progress.finish();
  t.is(writes.length, 3);
  t.regex(writes[0]!, /^\rsealing \[#{15} {15}\]  50% 512\.0 KiB\/1\.0 MiB/);
  t.regex(writes[1]!, /\[#{30}\] 100%/);
  t.is(writes[2], '\r\u001b[K');
});

test('draws nothing when stderr is not a terminal', (t) => {
  const { writes, stream } = fakeStream(false);
  const progress = createProgress('sealing', stream, true);
  progress.update(1, 2);
  progress.finish();
  t.deepEqual(writes, []);
});

test('draws nothing when stdout is not a terminal (output redirected)', (t) => {
  const { writes, stream } = fakeStream(true);
  const progress = createProgress('converting', stream, false);
  progress.update(1, 2);
  progress.finish();
  t.deepEqual(writes, []);
});

test('formatBytes', (t) => {
  t.is(formatBytes(0), '0 B');
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(3 * 1024 ** 3), '3.0 GiB');
});
