import test, { type ExecutionContext } from 'ava';
import { existsSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, NotFoundError } from '../../../snapshotter/core/errors.js';
import { fakeLayerContents, fakeSnapshotter, snapshotDirectories, type FakeSnapshotter } from '../../support/snapshotter-fakes.js';
import { until } from '../../support/until.js';

const NS = 'default';

async function setup(t: ExecutionContext): Promise<FakeSnapshotter> {
  const f = await fakeSnapshotter();
  t.teardown(() => f.dispose());
  return f;
}

/** Prepare + write + commit: a committed layer holding `files`. */
async function layer(f: FakeSnapshotter, name: string, parent: string, files: string[]): Promise<void> {
  await f.snapshotter.prepare(NS, `${name}-active`, parent, {});
  const { id } = f.store.getInfo(NS, `${name}-active`);
  for (const file of files) await writeFile(join(f.layout.upper(id), file), file);
  await f.snapshotter.commit(NS, name, `${name}-active`, {});
}

test('prepare makes a 0755 upper dir and a bind mount; commit turns it into layer files only', async (t) => {
  const f = await setup(t);
  const mounts = await f.snapshotter.prepare(NS, 'a', '', { l: 'v' });
  const { id } = f.store.getInfo(NS, 'a');
  t.deepEqual(mounts, [{ type: 'bind', source: f.layout.upper(id), options: ['rw', 'rbind'] }]);
  t.is((await stat(f.layout.upper(id))).mode & 0o777, 0o755);
  await writeFile(join(f.layout.upper(id), 'hello'), 'x');
  await f.snapshotter.commit(NS, 'c', 'a', { k: 'v' });
  t.deepEqual((await readdir(f.layout.snapshot(id))).sort(), ['layer.erofs', 'layer.verity']);
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(id)), ['hello']);
  const info = f.snapshotter.stat(NS, 'c');
  t.is(info.kind, 'committed');
  t.deepEqual(info.labels, { k: 'v' });
  t.deepEqual(await f.snapshotter.usage(NS, 'c'), { size: 4096, inodes: 2 });
});

test('the upper dir a Commit leaves waits in rm-*, which Cleanup leaves alone, and goes after the quiet period', async (t) => {
  const f = await fakeSnapshotter(undefined, { discardQuietMs: 300 });
  t.teardown(() => f.dispose());
  await layer(f, 'base', '', ['a', 'b']);
  const id = f.store.getInfo(NS, 'base').id;
  const discarded = (await readdir(f.layout.snapshots)).filter((n) => n.startsWith('rm-'));
  t.is(discarded.length, 1);
  t.deepEqual((await readdir(join(f.layout.snapshots, discarded[0]!))).sort(), ['fs', 'work']);
  t.deepEqual((await readdir(join(f.layout.snapshots, discarded[0]!, 'fs'))).sort(), ['a', 'b'], 'what containerd wrote, moved as it was');
  await f.snapshotter.cleanup();
  t.true(existsSync(join(f.layout.snapshots, discarded[0]!)), 'Cleanup (after every garbage collection) does not delete it now');
  await until('the discarded upper dir deleted', async () => ((await readdir(f.layout.snapshots)).length === 1 ? true : undefined), 10_000);
  t.deepEqual(await readdir(f.layout.snapshots), [String(id)]);
});

test('children stand on mounted layers, one overlay, nearest layer first', async (t) => {
  const f = await setup(t);
  await layer(f, 'l1', '', ['one']);
  await layer(f, 'l2', 'l1', ['two']);
  const l1 = f.store.getInfo(NS, 'l1').id;
  const l2 = f.store.getInfo(NS, 'l2').id;
  t.deepEqual(f.mounter.mounted(), [], 'nothing needs the layers yet');
  const mounts = await f.snapshotter.prepare(NS, 'c', 'l2', {});
  const { id } = f.store.getInfo(NS, 'c');
  t.deepEqual(mounts, [
    {
      type: 'overlay',
      source: 'overlay',
      options: ['index=off', `workdir=${f.layout.work(id)}`, `upperdir=${f.layout.upper(id)}`, `lowerdir=${f.mounts.mountPoint(l2)}:${f.mounts.mountPoint(l1)}`],
    },
  ]);
  t.deepEqual(f.snapshotter.mounts(NS, 'c'), mounts);
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(l1), f.mounts.mountPoint(l2)].sort());
  t.deepEqual(await f.snapshotter.view(NS, 'v', 'l1', {}), [{ type: 'bind', source: f.mounts.mountPoint(l1), options: ['ro', 'rbind'] }]);
  t.is(f.mounts.references(l1), 2);
  await f.snapshotter.remove(NS, 'c');
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(l1)]);
  t.false(existsSync(f.layout.snapshot(id)));
  await f.snapshotter.remove(NS, 'v');
  t.deepEqual(f.mounter.mounted(), []);
});

test('committing a child releases its layers and keeps the parent chain', async (t) => {
  const f = await setup(t);
  await layer(f, 'l1', '', ['one']);
  await layer(f, 'l2', 'l1', ['two']);
  t.deepEqual(f.mounter.mounted(), []);
  t.is(f.snapshotter.stat(NS, 'l2').parent, 'l1');
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo(NS, 'l2').id)), ['two']);
});

test('two Prepares of one key at once: exactly one wins, nothing leaks', async (t) => {
  const f = await setup(t);
  await layer(f, 'base', '', ['x']);
  f.mounter.delayMs = 10;
  const results = await Promise.allSettled([f.snapshotter.prepare(NS, 'k', 'base', {}), f.snapshotter.prepare(NS, 'k', 'base', {})]);
  t.is(results.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
  t.true(lost.reason instanceof AlreadyExistsError);
  t.is(f.mounts.references(f.store.getInfo(NS, 'base').id), 1);
  t.deepEqual((await readdir(f.layout.snapshots)).filter((n) => n.startsWith('new-')), []);
});

test('a failed commit keeps the active snapshot and leaves no layer files', async (t) => {
  const f = await setup(t);
  await layer(f, 'taken', '', []);
  await f.snapshotter.prepare(NS, 'a', '', {});
  const { id } = f.store.getInfo(NS, 'a');
  await t.throwsAsync(f.snapshotter.commit(NS, 'taken', 'a', {}), { instanceOf: AlreadyExistsError });
  t.is(f.layers.commits, 1, 'refused before building a layer');
  f.layers.failing.add(f.layout.upper(id));
  await t.throwsAsync(f.snapshotter.commit(NS, 'new', 'a', {}), { message: /cannot build/ });
  t.is(f.snapshotter.stat(NS, 'a').kind, 'active');
  t.deepEqual((await readdir(f.layout.snapshot(id))).sort(), ['fs', 'work']);
  await f.snapshotter.view(NS, 'v', 'taken', {});
  await t.throwsAsync(f.snapshotter.commit(NS, 'new', 'v', {}), { instanceOf: FailedPreconditionError });
});

test('a parent that is missing or not committed is refused before anything is mounted', async (t) => {
  const f = await setup(t);
  await t.throwsAsync(f.snapshotter.prepare(NS, 'a', 'nope', {}), { instanceOf: NotFoundError });
  await f.snapshotter.prepare(NS, 'p', '', {});
  await t.throwsAsync(f.snapshotter.view(NS, 'v', 'p', {}), { message: /not committed/ });
  t.deepEqual(f.mounter.calls, []);
  t.deepEqual((await snapshotDirectories(f.layout)).length, 1);
});

test('a layer that cannot be mounted fails the Prepare and leaves nothing behind', async (t) => {
  const f = await setup(t);
  await layer(f, 'base', '', []);
  f.mounter.failing.add(f.layout.image(f.store.getInfo(NS, 'base').id));
  await t.throwsAsync(f.snapshotter.prepare(NS, 'a', 'base', {}), { message: /cannot mount/ });
  t.throws(() => f.snapshotter.stat(NS, 'a'), { instanceOf: NotFoundError });
  t.deepEqual((await snapshotDirectories(f.layout)).length, 1);
});

test('removing a parent fails with "remove"; removal frees the key', async (t) => {
  const f = await setup(t);
  await layer(f, 'base', '', []);
  await f.snapshotter.prepare(NS, 'child', 'base', {});
  await t.throwsAsync(f.snapshotter.remove(NS, 'base'), { instanceOf: FailedPreconditionError, message: /remove/ });
  await f.snapshotter.remove(NS, 'child');
  await f.snapshotter.remove(NS, 'base');
  t.deepEqual(await snapshotDirectories(f.layout), []);
  await f.snapshotter.prepare(NS, 'base', '', {});
});

test('usage of an active snapshot counts its upper dir', async (t) => {
  const f = await setup(t);
  await f.snapshotter.prepare(NS, 'a', '', {});
  const { id } = f.store.getInfo(NS, 'a');
  await writeFile(join(f.layout.upper(id), 'f'), Buffer.alloc(10_000, 1));
  await mkdir(join(f.layout.upper(id), 'd'));
  const usage = await f.snapshotter.usage(NS, 'a');
  t.is(usage.inodes, 3);
  t.true(usage.size >= 10_000);
  t.deepEqual(await f.snapshotter.usage(NS, 'a'), usage);
});

test('cleanup drops unknown directories and leftovers, never live ones', async (t) => {
  const f = await setup(t);
  await layer(f, 'base', '', []);
  await f.snapshotter.prepare(NS, 'a', 'base', {});
  const base = f.store.getInfo(NS, 'base').id;
  const a = f.store.getInfo(NS, 'a').id;
  await mkdir(join(f.layout.snapshots, 'new-crashed'));
  await mkdir(join(f.layout.snapshots, 'rm-crashed'));
  await mkdir(join(f.layout.snapshots, '999'));
  await mkdir(f.layout.upper(base));
  await writeFile(join(f.layout.snapshot(a), '.tmp-layer.erofs.abc'), '');
  await writeFile(join(f.layout.snapshot(a), '.tmp-erofs-spill-1-abc'), '');
  // A Commit that died between building the layer and its transaction: the snapshot is still active.
  await writeFile(f.layout.image(a), 'half');
  await writeFile(f.layout.hashTree(a), 'half');
  await f.snapshotter.cleanup();
  t.deepEqual((await snapshotDirectories(f.layout)).sort(), [String(a), String(base)].sort());
  t.false(existsSync(join(f.layout.snapshots, 'rm-crashed')));
  t.deepEqual((await readdir(f.layout.snapshot(base))).sort(), ['layer.erofs', 'layer.verity']);
  t.deepEqual((await readdir(f.layout.snapshot(a))).sort(), ['fs', 'work']);
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(base)]);
});

test('a restart adopts the layer mounts live snapshots need and drops the rest', async (t) => {
  const f = await setup(t);
  await layer(f, 'base', '', []);
  await f.snapshotter.prepare(NS, 'a', 'base', {});
  const base = f.store.getInfo(NS, 'base').id;
  f.mounter.add(f.mounts.mountPoint(4242), '/stale.erofs');
  const calls = f.mounter.calls.length;
  const restarted = await f.restart();
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(base)]);
  t.false(f.mounter.calls.slice(calls).some((c) => c.startsWith('mount ')), 'the live mount was adopted');
  await restarted.remove(NS, 'a');
  t.deepEqual(f.mounter.mounted(), []);
});

test('an idle layer mount goes with its layer: Remove unmounts it before deleting the files', async (t) => {
  const f = await fakeSnapshotter(undefined, { idleGraceMs: 60_000 });
  t.teardown(() => f.dispose());
  await layer(f, 'base', '', []);
  await layer(f, 'top', 'base', []);
  const base = f.store.getInfo(NS, 'base').id;
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(base)], 'idle after the Commit of top released it');
  await f.snapshotter.remove(NS, 'top');
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(base)]);
  await f.snapshotter.remove(NS, 'base');
  t.deepEqual(f.mounter.mounted(), []);
  t.deepEqual(await snapshotDirectories(f.layout), []);
});

test('idle layer mounts: kept across Prepares and Cleanup, dropped at close; a restart adopts none of them', async (t) => {
  const f = await fakeSnapshotter(undefined, { idleGraceMs: 60_000 });
  t.teardown(() => f.dispose());
  await layer(f, 'base', '', []);
  const base = f.store.getInfo(NS, 'base').id;
  const mounts = () => f.mounter.calls.filter((c) => c.startsWith('mount ')).length;
  await f.snapshotter.prepare(NS, 'a', 'base', {});
  await f.snapshotter.remove(NS, 'a');
  // containerd calls Cleanup after every garbage collection, e.g. after removing a container.
  await f.snapshotter.cleanup();
  await f.snapshotter.prepare(NS, 'b', 'base', {});
  t.is(mounts(), 1, 'the idle layer was reused');
  await f.snapshotter.remove(NS, 'b');
  t.deepEqual(f.mounter.mounted(), [f.mounts.mountPoint(base)]);
  await f.restart();
  t.deepEqual(f.mounter.mounted(), [], 'an idle mount found at start-up (a crash) is unmounted');
  await f.snapshotter.prepare(NS, 'd', 'base', {});
  await f.snapshotter.remove(NS, 'd');
  await f.snapshotter.close();
  t.deepEqual(f.mounter.mounted(), []);
});
