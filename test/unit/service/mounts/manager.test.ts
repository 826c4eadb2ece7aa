import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { MountManager } from '../../../../snapshotter/service/mounts/manager.js';
import { FakeMounter, fakeLayer } from '../../../support/snapshotter-fakes.js';

function setup(t: ExecutionContext) {
  const dir = mkdtempSync(join(tmpdir(), 'mounts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mounter = new FakeMounter();
  const manager = new MountManager({ dir, layerOf: (id) => fakeLayer(id), mounter, logger: silentLogger });
  return { dir, mounter, manager };
}

test('the first reference mounts, the last one unmounts and removes the mount point', async (t) => {
  const { dir, mounter, manager } = setup(t);
  await manager.acquire([2, 1]);
  await manager.acquire([1]);
  t.deepEqual(mounter.mounted(), [join(dir, '1'), join(dir, '2')]);
  t.is(manager.references(1), 2);
  await manager.release([2, 1]);
  t.deepEqual(mounter.mounted(), [join(dir, '1')]);
  t.false(existsSync(join(dir, '2')));
  await manager.release([1]);
  t.deepEqual(mounter.mounted(), []);
  t.deepEqual(readdirSync(dir), []);
  t.is(mounter.calls.filter((c) => c.startsWith('mount')).length, 2);
});

test('concurrent first references mount a layer once', async (t) => {
  const { mounter, manager } = setup(t);
  mounter.delayMs = 20;
  await Promise.all([manager.acquire([1]), manager.acquire([1]), manager.acquire([1, 2])]);
  t.is(mounter.calls.filter((c) => c === `mount /layers/1.erofs ${manager.mountPoint(1)}`).length, 1);
  t.is(manager.references(1), 3);
});

test('a release racing an acquire never leaves a referenced layer unmounted', async (t) => {
  const { mounter, manager } = setup(t);
  mounter.delayMs = 5;
  await manager.acquire([1]);
  await Promise.all([manager.release([1]), manager.acquire([1])]);
  t.is(manager.references(1), 1);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(1)]);
});

test('acquire is all or nothing', async (t) => {
  const { mounter, manager } = setup(t);
  await manager.acquire([1]);
  mounter.failing.add('/layers/3.erofs');
  await t.throwsAsync(manager.acquire([3, 2, 1]), { message: /cannot mount \/layers\/3\.erofs/ });
  t.is(manager.references(1), 1);
  t.is(manager.references(2), 0);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(1)]);
});

test('a failed unmount is kept mounted, reused, and retried by sweep', async (t) => {
  const { mounter, manager } = setup(t);
  await manager.acquire([1]);
  const unmount = mounter.unmount.bind(mounter);
  mounter.unmount = async () => {
    throw new Error('EBUSY');
  };
  await manager.release([1]);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(1)]);
  await manager.acquire([1]);
  t.is(mounter.calls.filter((c) => c.startsWith('mount')).length, 1, 'still mounted, not mounted again');
  await manager.release([1]);
  mounter.unmount = unmount;
  await manager.sweep();
  t.deepEqual(mounter.mounted(), []);
});

test('restore adopts right mounts, replaces wrong ones, unmounts unneeded ones and mounts missing ones', async (t) => {
  const { dir, mounter, manager } = setup(t);
  for (const id of ['1', '2', '3', '4', '5', 'stray', '7']) mkdirSync(join(dir, id));
  mounter.add(join(dir, '1'), '/layers/1.erofs');
  mounter.add(join(dir, '2'), '/layers/other.erofs');
  mounter.add(join(dir, '3'), '/layers/3.erofs');
  mounter.add(join(dir, '4'), '/layers/4.erofs');
  mounter.add(join(dir, '4'), '/layers/4.erofs');
  mounter.add(join(dir, 'stray'), '/somewhere');
  mounter.add('/elsewhere/6', '/layers/6.erofs');
  await manager.restore(
    new Map([
      [1, 2],
      [2, 1],
      [4, 1],
      [5, 1],
    ]),
  );
  t.deepEqual(mounter.mounted(), ['/elsewhere/6', ...['1', '2', '4', '5', 'stray'].map((id) => join(dir, id))].sort());
  t.deepEqual(
    mounter.table.filter((e) => e.mountPoint.startsWith(dir)).map((e) => [e.mountPoint, e.source]).sort(),
    [
      [join(dir, '1'), '/layers/1.erofs'],
      [join(dir, '2'), '/layers/2.erofs'],
      [join(dir, '4'), '/layers/4.erofs'],
      [join(dir, '5'), '/layers/5.erofs'],
      [join(dir, 'stray'), '/somewhere'],
    ],
  );
  t.false(mounter.calls.includes(`mount /layers/1.erofs ${join(dir, '1')}`), 'the right mount was adopted');
  t.deepEqual(readdirSync(dir).sort(), ['1', '2', '4', '5', 'stray']);
  t.is(manager.references(1), 2);
  await manager.release([1, 1]);
  t.false(mounter.mounted().includes(join(dir, '1')));
});

test('restore survives a layer that cannot be mounted and tries again on the next acquire', async (t) => {
  const { mounter, manager } = setup(t);
  mounter.failing.add('/layers/1.erofs');
  await manager.restore(new Map([[1, 1]]));
  t.deepEqual(mounter.mounted(), []);
  mounter.failing.clear();
  await manager.acquire([1]);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(1)]);
  t.is(manager.references(1), 2);
});

/** A manager whose idle layers stay mounted for `idleGraceMs`. */
function lazy(t: ExecutionContext, idleGraceMs: number) {
  const dir = mkdtempSync(join(tmpdir(), 'mounts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mounter = new FakeMounter();
  const manager = new MountManager({ dir, layerOf: (id) => fakeLayer(id), mounter, logger: silentLogger, idleGraceMs });
  const mounts = () => mounter.calls.filter((c) => c.startsWith('mount')).length;
  return { dir, mounter, manager, mounts };
}

test('an idle layer stays mounted for its next user: a deep unpack mounts each layer once', async (t) => {
  const { mounter, manager, mounts } = lazy(t, 60_000);
  // An unpack of layer n stands on layers 1..n-1; its Commit releases them before layer n+1 is prepared.
  for (let n = 2; n <= 20; n++) {
    const below = Array.from({ length: n - 1 }, (_, i) => n - 1 - i);
    await manager.acquire(below);
    await manager.release(below);
  }
  t.is(mounts(), 19, 'one mount per layer, not one per layer and unpack');
  t.is(mounter.mounted().length, 19);
  t.is(manager.references(1), 0);
  await manager.sweep();
  t.is(mounter.mounted().length, 19, 'Cleanup keeps layers in their grace period');
  await manager.close();
  t.deepEqual(mounter.mounted(), [], 'shutdown drops idle layers');
});

test('an idle layer is unmounted when its grace period ends, unless a user came back', async (t) => {
  const { mounter, manager, mounts } = lazy(t, 30);
  await manager.acquire([1, 2]);
  await manager.release([1, 2]);
  await manager.acquire([2]);
  await new Promise((resolve) => setTimeout(resolve, 80));
  t.deepEqual(mounter.mounted(), [manager.mountPoint(2)], 'layer 1 went idle and was unmounted; layer 2 is in use');
  t.is(mounts(), 2);
  await manager.release([2]);
  await new Promise((resolve) => setTimeout(resolve, 80));
  t.deepEqual(mounter.mounted(), []);
});

test('close() unmounts idle layers and keeps referenced ones for their containers', async (t) => {
  const { mounter, manager } = lazy(t, 60_000);
  await manager.acquire([1, 2]);
  await manager.release([1]);
  await manager.close();
  t.deepEqual(mounter.mounted(), [manager.mountPoint(2)]);
});

test('forget() unmounts an idle layer at once (its files are being removed); a failed unmount is left to sweep', async (t) => {
  const { mounter, manager } = lazy(t, 60_000);
  await manager.acquire([1, 2]);
  await manager.release([1, 2]);
  await manager.forget(1);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(2)]);
  const unmount = mounter.unmount.bind(mounter);
  mounter.unmount = async () => {
    throw new Error('EBUSY');
  };
  await manager.forget(2);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(2)]);
  mounter.unmount = unmount;
  await manager.sweep();
  t.deepEqual(mounter.mounted(), []);
});

test('a layer no new user could take (corrupted device, a plain mount under required) is unmounted at once, not kept idle', async (t) => {
  const { mounter, manager } = lazy(t, 60_000);
  const refused = new Set([1]);
  Object.assign(mounter, { reusable: async (layer: { id: number }) => !refused.has(layer.id) });
  await manager.acquire([1, 2]);
  await manager.release([1, 2]);
  t.deepEqual(mounter.mounted(), [manager.mountPoint(2)]);
});
