/**
 * Read-only container roots: which containers get one (the rootfs policy
 * over recorded and listed images), the one overlay mount without upper dir
 * over the mountpoints layer, and that layer's lifetime.
 */
import test from 'ava';
import { AlreadyExistsError, FailedPreconditionError } from '../../../snapshotter/core/errors.js';
import { silentLogger } from '../../../snapshotter/core/log.js';
import { ImagePatterns } from '../../../snapshotter/policy/image-patterns.js';
import { MountManager } from '../../../snapshotter/service/mounts/manager.js';
import { mountableLayer } from '../../../snapshotter/service/mounts/mountable-layer.js';
import { RootfsPolicy } from '../../../snapshotter/service/rootfs/policy.js';
import { Snapshotter } from '../../../snapshotter/service/snapshotter.js';
import { CRI_IMAGE_REF_LABEL, CRI_LAYER_DIGEST_LABEL, SNAPSHOT_REF_LABEL } from '../../../snapshotter/service/pull/source.js';
import { MOUNTPOINTS_NAMESPACE } from '../../../snapshotter/service/rootfs/mountpoints.js';
import { addImage, type FakeContent, type FakeImages } from '../../support/containerd-fakes.js';
import { pullFakes, TEST_MOUNTPOINTS } from '../../support/pull-fakes.js';
import { fakeMountsFs, type FakeSnapshotter } from '../../support/snapshotter-fakes.js';

const NS = 'k8s.io';

/** A CRI pull of `name` with one layer `bytes` through the fast path; returns the layer snapshot's name. */
async function pull(f: FakeSnapshotter, content: FakeContent, images: FakeImages, name: string, bytes: string): Promise<string> {
  const img = addImage(content, images, NS, name, [Buffer.from(bytes)]);
  const chainId = img.chainIds[0]!;
  const labels = { [SNAPSHOT_REF_LABEL]: chainId, [CRI_LAYER_DIGEST_LABEL]: img.layers[0]!, [CRI_IMAGE_REF_LABEL]: name };
  await expectFastPath(f.snapshotter.prepare(NS, `${NS}/1/extract-1 ${chainId}`, '', labels));
  return `${NS}/1/${chainId}`;
}

async function expectFastPath(p: Promise<unknown>): Promise<void> {
  const outcome = await p.then(() => 'resolved', (err: unknown) => err);
  if (!(outcome instanceof AlreadyExistsError)) throw new Error(`expected the fast path's ALREADY_EXISTS, got ${String(outcome)}`);
}

/** The mountpoints layer of the chain whose top layer is `top` (a snapshot name in NS). */
function mountpointsId(f: FakeSnapshotter, top: string): number {
  const topId = f.store.getInfo(NS, top).id;
  const [layer] = f.store.walk(MOUNTPOINTS_NAMESPACE, []).filter((s) => s.name.startsWith(`${topId}/`));
  return f.store.getInfo(MOUNTPOINTS_NAMESPACE, layer!.name).id;
}

test('a protected image: one overlay, the mountpoints layer over the image layer, no upper dir', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const top = await pull(f, content, images, 'r/d8/ctrl:1', 'ctrl');
  const layer = f.store.getInfo(NS, top).id;
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-a`, top, {});
  const mp = mountpointsId(f, top);
  t.deepEqual(mounts, [{ type: 'overlay', source: 'overlay', options: ['index=off', `lowerdir=${f.mounts.mountPoint(mp)}:${f.mounts.mountPoint(layer)}`] }]);
  t.deepEqual(f.snapshotter.mounts(NS, `${NS}/5/container-a`), mounts);
  t.is(f.mounts.references(mp), 1);
  await f.snapshotter.remove(NS, `${NS}/5/container-a`);
  t.is(f.mounts.references(mp), 0);
  t.deepEqual(f.mounter.mounted(), []);
});

test('an unprotected image keeps its writable upper dir; unpacks on a protected chain stay writable', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const free = await pull(f, content, images, 'r/free:1', 'free');
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-b`, free, {});
  t.true(mounts[0]!.options.some((o) => o.startsWith('upperdir=')));
  const protectedChain = await pull(f, content, images, 'r/d8/ctrl:1', 'ctrl');
  const unpack = await f.snapshotter.prepare(NS, `${NS}/6/extract-6 sha256:${'9'.repeat(64)}`, protectedChain, {});
  t.true(unpack[0]!.options.some((o) => o.startsWith('upperdir=')));
});

test('fail closed: a chain shared by an unprotected and a protected image is protected', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  // The unprotected image was pulled first, so the layer records only it.
  const top = await pull(f, content, images, 'r/free:1', 'shared');
  addImage(content, images, NS, 'r/d8/same:1', [Buffer.from('shared')]);
  t.deepEqual(f.store.layerOrigin(NS, top).images, ['r/free:1']);
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-c`, top, {});
  t.false(mounts[0]!.options.some((o) => o.startsWith('upperdir=')));
});

test('fail closed: a layer recorded for a protected image stays protected after the image is gone', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const top = await pull(f, content, images, 'r/d8/ctrl:1', 'ctrl');
  images.records.set(NS, []);
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-d`, top, {});
  t.false(mounts[0]!.options.some((o) => o.startsWith('upperdir=')));
});

test("containerd's image service not answering: the container Prepare is refused, saying why, and leaves nothing", async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const name = await pull(f, content, images, 'r/free:1', 'free');
  images.down = true;
  const err = await t.throwsAsync(f.snapshotter.prepare(NS, `${NS}/5/container-e`, name, {}), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, new RegExp(`snapshot ${name}\\) gets a read-only root filesystem: .*did not answer`));
  t.regex(err!.hint!, /containerd_address/);
  t.deepEqual(f.snapshotter.list(NS, ['kind==active']), []);
  t.deepEqual(f.mounter.mounted(), []);
});

test('read_only = "all": every container is read-only, also without any pattern', async (t) => {
  const { f, content, images } = await pullFakes(t, { mode: 'all' });
  const top = await pull(f, content, images, 'r/free:1', 'free');
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-f`, top, {});
  t.false(mounts[0]!.options.some((o) => o.startsWith('upperdir=')));
  // A read-only active snapshot can still be committed: nothing was written, so the layer is empty.
  await f.snapshotter.commit(NS, 'committed-f', `${NS}/5/container-f`, {});
  t.is(f.mounts.references(mountpointsId(f, top)), 0);
});

test('a restart keeps the mountpoints layer, its references and the read-only mounts', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const top = await pull(f, content, images, 'r/d8/ctrl:1', 'ctrl');
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-g`, top, {});
  const mp = mountpointsId(f, top);
  const restarted = await f.restart();
  t.is(mountpointsId(f, top), mp, 'the same configuration keeps the layer');
  t.is(f.mounts.references(mp), 1);
  t.deepEqual(restarted.mounts(NS, `${NS}/5/container-g`), mounts);
  t.is(f.store.walk(MOUNTPOINTS_NAMESPACE, []).length, 1);
});

test('no protection configured: no mountpoints layer and no call to containerd for containers', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const top = await pull(f, content, images, 'r/free:1', 'free');
  images.down = true;
  const mounts = await f.snapshotter.prepare(NS, `${NS}/5/container-h`, top, {});
  t.true(mounts[0]!.options.some((o) => o.startsWith('upperdir=')));
  t.deepEqual(f.store.walk(MOUNTPOINTS_NAMESPACE, []), []);
});

test('another mountpoints configuration makes a new layer; the old one goes once no container uses it', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const top = await pull(f, content, images, 'r/d8/ctrl:1', 'ctrl');
  await f.snapshotter.prepare(NS, `${NS}/5/old-config`, top, {});
  /** The daemon restarted with `mountpoints` (undefined: no protection at all). */
  const restart = async (mountpoints: typeof TEST_MOUNTPOINTS | undefined) => {
    const mounts = new MountManager({ dir: f.mounts.dir, layerOf: (id) => mountableLayer(f.layout, f.store, id), mounter: f.mounter, logger: silentLogger });
    const rootfs = new RootfsPolicy({ mode: 'protected', patterns: new ImagePatterns(mountpoints ? ['r/d8/*'] : []), imageLayers: undefined, mountpoints: mountpoints ?? TEST_MOUNTPOINTS, logger: silentLogger });
    const snapshotter = new Snapshotter({ layout: f.layout, store: f.store, layers: f.layers, mounts, logger: silentLogger, rootfs, layerFs: fakeMountsFs });
    await snapshotter.start();
    return snapshotter;
  };
  const names = () => f.store.walk(MOUNTPOINTS_NAMESPACE, []).map((s) => s.name);
  const [first] = names();
  const changed = { ...TEST_MOUNTPOINTS, files: [...TEST_MOUNTPOINTS.files, '/etc/hostname'] };
  const next = await restart(changed);
  t.deepEqual(names(), [first], 'the old layer stays while a container stands on it');
  const mounts = await next.prepare(NS, `${NS}/6/new-config`, top, {});
  t.is(names().length, 2, 'the new configuration gets its own layer');
  t.false(mounts[0]!.options.some((o) => o.includes(f.mounts.mountPoint(f.store.getInfo(MOUNTPOINTS_NAMESPACE, first!).id))));
  await next.remove(NS, `${NS}/5/old-config`);
  await next.cleanup();
  t.false(names().includes(first!), 'unused now: Cleanup removed it');
  t.is(names().length, 1);
  await next.remove(NS, `${NS}/6/new-config`);
  await restart(undefined);
  t.deepEqual(names(), [], 'protection turned off: the last one goes too');
});

test('each layer chain has its own mountpoints layer, built once, kept for the next container, removed with its top layer', async (t) => {
  const { f, content, images } = await pullFakes(t, { protect: ['r/d8/*'] });
  const one = await pull(f, content, images, 'r/d8/one:1', 'one');
  const two = await pull(f, content, images, 'r/d8/two:1', 'two');
  await Promise.all([
    f.snapshotter.prepare(NS, `${NS}/5/one-a`, one, {}),
    f.snapshotter.prepare(NS, `${NS}/6/one-b`, one, {}),
    f.snapshotter.prepare(NS, `${NS}/7/two-a`, two, {}),
  ]);
  const names = () => f.store.walk(MOUNTPOINTS_NAMESPACE, []).map((s) => s.name);
  t.is(names().length, 2, 'concurrent containers of one chain share one layer');
  const mpOne = mountpointsId(f, one);
  t.not(mpOne, mountpointsId(f, two));
  t.is(f.mounts.references(mpOne), 2);
  for (const key of ['5/one-a', '6/one-b']) await f.snapshotter.remove(NS, `${NS}/${key}`);
  t.is(mountpointsId(f, one), mpOne, 'kept: the next container of the image needs it again');
  await f.snapshotter.prepare(NS, `${NS}/8/one-c`, one, {});
  t.is(mountpointsId(f, one), mpOne);
  await f.snapshotter.remove(NS, `${NS}/8/one-c`);
  await f.snapshotter.remove(NS, one);
  t.is(names().length, 1, 'gone with its top layer');
  t.true(names()[0]!.startsWith(`${f.store.getInfo(NS, two).id}/`), "the other chain's stays");
  t.false(f.mounter.mounted().includes(f.mounts.mountPoint(mpOne)));
  await t.throwsAsync(f.snapshotter.remove(NS, two), { instanceOf: FailedPreconditionError }, 'the top layer of a running container stays');
  t.is(names().length, 1);
});
