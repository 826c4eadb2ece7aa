/**
 * What schema version 2 adds to the metadata store: committed snapshots
 * inserted directly (the pull fast path), their chain ID and images, and
 * active snapshots with a mountpoints layer instead of an upper dir.
 */
import test from 'ava';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import { SqliteMetadataStore } from '../../../../snapshotter/service/metadata/sqlite.js';
import { layersBelow } from '../../../../snapshotter/service/metadata/types.js';
import { steppingClock } from '../../../support/metadata-store-suite.js';

const NS = 'k8s.io';
const LAYER = { usage: { size: 4096, inodes: 2 }, rootHash: 'ab'.repeat(32) };
const C1 = `sha256:${'1'.repeat(64)}`;

function store(t: import('ava').ExecutionContext): SqliteMetadataStore {
  const s = new SqliteMetadataStore(':memory:', { clock: steppingClock() });
  t.teardown(() => s.close());
  return s;
}

test('insertCommitted: a committed snapshot with its chain ID, images and labels, findable by label and parent', (t) => {
  const s = store(t);
  const c1 = s.insertCommitted(NS, C1, '', { ...LAYER, chainId: C1, images: ['r/b:1', 'r/a:1'] }, { 'containerd.io/snapshot.ref': C1 });
  t.deepEqual(c1, { id: c1.id, kind: 'committed', parentIds: [] });
  t.like(s.getInfo(NS, C1).info, { kind: 'committed', parent: '', labels: { 'containerd.io/snapshot.ref': C1 } });
  t.deepEqual(s.layerOrigin(NS, C1), { id: c1.id, chainId: C1, images: ['r/a:1', 'r/b:1'] });
  t.is(s.findCommitted(NS, '', { name: 'containerd.io/snapshot.ref', value: C1 }), C1);
  t.is(s.findCommitted(NS, 'other-parent', { name: 'containerd.io/snapshot.ref', value: C1 }), undefined);
  t.is(s.findCommitted('default', '', { name: 'containerd.io/snapshot.ref', value: C1 }), undefined);
  t.throws(() => s.insertCommitted(NS, C1, '', LAYER, {}), { instanceOf: AlreadyExistsError });
  const c2 = s.insertCommitted(NS, 'c2', C1, LAYER, {});
  t.deepEqual(c2.parentIds, [c1.id]);
  t.deepEqual(s.layerOrigin(NS, 'c2'), { id: c2.id, chainId: undefined, images: [] });
});

test('an active snapshot with a mountpoints layer: reported everywhere, and the layer cannot go while it is used', (t) => {
  const s = store(t);
  const layer = s.insertCommitted(NS, C1, '', LAYER, {});
  const mp = s.insertCommitted('containerd-integrity/mountpoints', 'mp', '', LAYER, {});
  const active = s.createSnapshot(NS, 'active', 'ctr', C1, {}, { mountpoints: mp.id });
  t.is(active.mountpoints, mp.id);
  t.deepEqual(layersBelow(active), [mp.id, layer.id]);
  t.is(s.getSnapshot(NS, 'ctr').mountpoints, mp.id);
  t.is(s.checkCommit(NS, 'ctr', 'x').mountpoints, mp.id);
  t.is(s.listAll().find((x) => x.key === 'ctr')?.mountpoints, mp.id);
  t.throws(() => s.remove('containerd-integrity/mountpoints', 'mp'), { instanceOf: FailedPreconditionError });
  t.is(s.remove(NS, 'ctr').mountpoints, mp.id);
  s.remove('containerd-integrity/mountpoints', 'mp');
  t.throws(() => s.createSnapshot(NS, 'view', 'v', C1, {}, { mountpoints: layer.id }), { instanceOf: InvalidArgumentError });
  t.throws(() => s.createSnapshot(NS, 'active', 'a', C1, {}, { mountpoints: 9999 }), { instanceOf: InvalidArgumentError });
  t.is(s.createSnapshot(NS, 'active', 'plain', C1, {}).mountpoints, undefined);
});

test('Commit records the chain ID and images of a layer built from its blob', (t) => {
  const s = store(t);
  s.createSnapshot(NS, 'active', 'a', '', {});
  s.commitActive(NS, 'a', C1, { ...LAYER, chainId: C1, images: ['r/a:1'] }, {});
  t.deepEqual(s.layerOrigin(NS, C1).images, ['r/a:1']);
  t.is(s.layerOrigin(NS, C1).chainId, C1);
});
