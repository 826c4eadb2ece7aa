import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../snapshotter/core/log.js';
import { DeferredRemoval } from '../../../snapshotter/service/deferred-removal.js';
import { until } from '../../support/until.js';

function setup(t: ExecutionContext, quietMs: number, maxDelayMs?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'deferred-removal-'));
  const busy = new Set<string>();
  const removal = new DeferredRemoval({ dir, logger: silentLogger, quietMs, busy, ...(maxDelayMs !== undefined ? { maxDelayMs } : {}) });
  t.teardown(async () => {
    await removal.close();
    rmSync(dir, { recursive: true, force: true });
  });
  /** An upper dir with a few files, as a Commit leaves it. */
  const upper = (name: string): string => {
    const path = join(dir, name);
    mkdirSync(join(path, 'fs', 'etc'), { recursive: true });
    writeFileSync(join(path, 'fs', 'etc', 'hostname'), 'x');
    mkdirSync(join(path, 'work'));
    return path;
  };
  return { dir, busy, removal, upper };
}

test('discard moves the paths into one rm-* at once and deletes it once quietMs passed without a discard', async (t) => {
  const { dir, removal, upper } = setup(t, 60);
  const snapshot = upper('7');
  removal.discard([join(snapshot, 'fs'), join(snapshot, 'work')]);
  const [trash, ...others] = readdirSync(dir).filter((n) => n.startsWith('rm-'));
  t.deepEqual(others, []);
  t.deepEqual(readdirSync(join(dir, trash!)).sort(), ['fs', 'work']);
  t.deepEqual(readdirSync(snapshot), [], 'nothing of it stays in the snapshot');
  await until('the discarded directory deleted', () => (readdirSync(dir).some((n) => n.startsWith('rm-')) ? undefined : true), 10_000);
  t.deepEqual(readdirSync(dir), ['7']);
});

test('each discard postpones the deletion: nothing goes while discards keep coming', async (t) => {
  const { dir, removal, upper } = setup(t, 1_000);
  for (let i = 0; i < 4; i++) {
    removal.discard([join(upper(String(i)), 'fs')]);
    await sleep(400);
  }
  t.is(readdirSync(dir).filter((n) => n.startsWith('rm-')).length, 4, 'all four wait, 1.6 s after the first');
  await until('all deleted together', () => (readdirSync(dir).some((n) => n.startsWith('rm-')) ? undefined : true), 10_000);
});

test('requests postpone the deletion, up to the deadline: a node that is never quiet still gets its space back', async (t) => {
  const { dir, removal, upper } = setup(t, 60_000, 200);
  removal.postpone(); // nothing waits: nothing to do
  removal.discard([join(upper('1'), 'fs')]);
  const gone = () => !readdirSync(dir).some((n) => n.startsWith('rm-'));
  // Postponed every few ms, it could only ever go at its deadline.
  await until('deleted at the deadline', () => (removal.postpone(), gone() ? true : undefined), 10_000);
  t.true(gone());
});

test('what waits or is being deleted is busy (Cleanup leaves it alone) until it is gone', async (t) => {
  const { busy, removal, upper } = setup(t, 50);
  removal.discard([join(upper('1'), 'fs')]);
  const [waiting, ...others] = [...busy];
  t.deepEqual(others, []);
  t.regex(waiting!, /\/rm-[0-9a-f-]+$/);
  await until('the deletion finished', () => (busy.size === 0 ? true : undefined), 10_000);
  t.false(existsSync(waiting!));
});

test('a path that is not there is no error; close leaves what waits to start-up', async (t) => {
  const { dir, removal } = setup(t, 60_000);
  removal.discard([join(dir, 'missing')]);
  await removal.close();
  t.is(readdirSync(dir).filter((n) => n.startsWith('rm-')).length, 1);
});
