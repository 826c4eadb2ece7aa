import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InternalError, SystemCallError } from '../../../snapshotter/core/errors.js';
import { DataSpill } from '../../../snapshotter/layer/spill.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'spill-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('the spill file is unlinked as soon as it is open', (t) => {
  const dir = tempDir(t);
  const spill = DataSpill.create(dir);
  t.teardown(() => spill.close());
  spill.append(new Uint8Array(10));
  t.deepEqual(readdirSync(dir), []);
});

test('reads return what was appended, across the write buffer and across appends', (t) => {
  const spill = DataSpill.create(tempDir(t));
  t.teardown(() => spill.close());
  const data = new Uint8Array(3 * (1 << 20) + 123).map((_, i) => (i * 7 + (i >> 11)) & 0xff);
  // Small appends are gathered, big ones (64 KiB and more) written directly; mixed, they must still line up.
  const cuts = [100_001, 7, 65_535, 65_536, 300_000, 1, 40_000];
  for (let i = 0, k = 0; i < data.length; k++) {
    const n = cuts[k % cuts.length]!;
    spill.append(data.subarray(i, i + n));
    i += n;
  }
  t.is(spill.size, data.length);
  for (const [offset, length] of [[0, 10], [(1 << 20) - 5, 10], [data.length - 100, 100], [12345, 2_000_000]] as const) {
    const into = new Uint8Array(length + 3);
    spill.read(offset, length, into);
    t.deepEqual(into.subarray(0, length), data.subarray(offset, offset + length));
  }
});

test('reading outside the data or after close is an error', (t) => {
  const spill = DataSpill.create(tempDir(t));
  spill.append(new Uint8Array(4));
  t.throws(() => spill.read(2, 3, new Uint8Array(3)), { instanceOf: InternalError });
  spill.close();
  t.throws(() => spill.append(new Uint8Array(1)), { instanceOf: InternalError });
});

test('a missing spill directory is a system call error that names it', (t) => {
  const error = t.throws(() => DataSpill.create('/nonexistent/spill-dir'), { instanceOf: SystemCallError });
  t.is(error!.errno, 'ENOENT');
  t.is(error!.path, '/nonexistent/spill-dir');
});
