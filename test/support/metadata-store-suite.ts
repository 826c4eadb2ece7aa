/**
 * The contract of a MetadataStore, run against every implementation
 * (like containerd's storage tests): kinds, parent chains, labels, times,
 * namespaces, errors and filters, in containerd's semantics.
 */
import test, { type ExecutionContext } from 'ava';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../snapshotter/core/errors.js';
import type { Clock } from '../../snapshotter/core/clock.js';
import type { MetadataStore } from '../../snapshotter/service/metadata/store.js';
import type { CommittedLayer } from '../../snapshotter/service/metadata/types.js';

export interface StoreUnderTest {
  store: MetadataStore;
  /** Drops everything the factory made (files, connections). */
  dispose(): void;
}

export type MetadataStoreFactory = (options: { clock: Clock }) => StoreUnderTest;

/** A clock that ticks one nanosecond per reading, from a value far beyond millisecond precision. */
export function steppingClock(start = 1_700_000_000_123_456_789n): Clock & { last(): bigint } {
  let next = start;
  const clock = (() => next++) as Clock & { last(): bigint };
  clock.last = () => next - 1n;
  return clock;
}

const NS = 'testsuite';
const LAYER: CommittedLayer = { usage: { size: 8192, inodes: 3 }, rootHash: 'ab'.repeat(32) };

export function metadataStoreSuite(name: string, factory: MetadataStoreFactory): void {
  const it = (title: string, fn: (t: ExecutionContext, store: MetadataStore, clock: ReturnType<typeof steppingClock>) => void) =>
    test(`${name}: ${title}`, (t) => {
      const clock = steppingClock();
      const { store, dispose } = factory({ clock });
      t.teardown(dispose);
      fn(t, store, clock);
    });

  /** committed c1 <- committed c2, the base of most cases. */
  const twoLayers = (store: MetadataStore) => {
    store.createSnapshot(NS, 'active', 'c1-a', '', {});
    const c1 = store.commitActive(NS, 'c1-a', 'c1', LAYER, {});
    store.createSnapshot(NS, 'active', 'c2-a', 'c1', {});
    const c2 = store.commitActive(NS, 'c2-a', 'c2', LAYER, {});
    return { c1: c1.id, c2: c2.id };
  };

  it('a new active snapshot has no parent, equal nanosecond times and its labels', (t, store, clock) => {
    const s = store.createSnapshot(NS, 'active', 'a', '', { l: 'v', empty: '' });
    t.deepEqual(s.parentIds, []);
    t.is(s.kind, 'active');
    const { id, info, usage } = store.getInfo(NS, 'a');
    t.is(id, s.id);
    t.deepEqual(info, { name: 'a', parent: '', kind: 'active', created: clock.last(), updated: clock.last(), labels: { l: 'v' } });
    t.deepEqual(usage, { size: 0, inodes: 0 });
  });

  it('parent chains are nearest first and survive commits', (t, store) => {
    const { c1, c2 } = twoLayers(store);
    const v = store.createSnapshot(NS, 'view', 'v', 'c2', {});
    t.deepEqual(v.parentIds, [c2, c1]);
    t.deepEqual(store.getSnapshot(NS, 'v'), v);
    t.is(store.getInfo(NS, 'c2').info.parent, 'c1');
    t.is(store.getInfo(NS, 'v').info.kind, 'view');
  });

  it('a parent must exist and be committed', (t, store) => {
    t.throws(() => store.createSnapshot(NS, 'active', 'a', 'missing', {}), { instanceOf: NotFoundError, message: /missing/ });
    store.createSnapshot(NS, 'active', 'p', '', {});
    t.throws(() => store.createSnapshot(NS, 'view', 'v', 'p', {}), { instanceOf: InvalidArgumentError, message: /not committed/ });
    t.throws(() => store.getInfo(NS, 'v'), { instanceOf: NotFoundError });
  });

  it('keys are unique across kinds; a removed key can be used again', (t, store) => {
    twoLayers(store);
    store.createSnapshot(NS, 'active', 'k', 'c1', {});
    t.throws(() => store.createSnapshot(NS, 'view', 'k', 'c1', {}), { instanceOf: AlreadyExistsError, message: /"k"/ });
    t.throws(() => store.createSnapshot(NS, 'active', 'c2', '', {}), { instanceOf: AlreadyExistsError });
    store.remove(NS, 'k');
    t.is(store.createSnapshot(NS, 'view', 'k', 'c1', {}).kind, 'view');
  });

  it('an empty key is refused', (t, store) => {
    t.throws(() => store.createSnapshot(NS, 'active', '', '', {}), { instanceOf: InvalidArgumentError });
  });

  it('getSnapshot serves active and view snapshots only', (t, store) => {
    twoLayers(store);
    t.throws(() => store.getSnapshot(NS, 'c1'), { instanceOf: FailedPreconditionError });
    t.throws(() => store.getSnapshot(NS, 'nope'), { instanceOf: NotFoundError, message: /"nope".*"testsuite"/ });
  });

  it('commit keeps id and parent, replaces labels, resets times and frees the key', (t, store, clock) => {
    twoLayers(store);
    const a = store.createSnapshot(NS, 'active', 'a', 'c2', { old: '1' });
    const created = clock.last();
    const c = store.commitActive(NS, 'a', 'c3', LAYER, { new: '2' });
    t.is(c.id, a.id);
    t.deepEqual(c.parentIds, a.parentIds);
    const { info, usage } = store.getInfo(NS, 'c3');
    t.deepEqual(info.labels, { new: '2' });
    t.is(info.kind, 'committed');
    t.is(info.parent, 'c2');
    t.true(info.created > created);
    t.is(info.created, info.updated);
    t.deepEqual(usage, LAYER.usage);
    t.throws(() => store.getInfo(NS, 'a'), { instanceOf: NotFoundError });
  });

  it('commit refuses an existing name first, then a missing key, then a non-active one', (t, store) => {
    twoLayers(store);
    store.createSnapshot(NS, 'view', 'v', 'c1', {});
    t.throws(() => store.commitActive(NS, 'missing', 'c1', LAYER, {}), { instanceOf: AlreadyExistsError });
    t.throws(() => store.commitActive(NS, 'missing', 'x', LAYER, {}), { instanceOf: NotFoundError });
    t.throws(() => store.commitActive(NS, 'v', 'x', LAYER, {}), { instanceOf: FailedPreconditionError, message: /view/ });
    t.is(store.getInfo(NS, 'v').info.kind, 'view');
  });

  it('layerChain and checkCommit fail like the writes they precede, and change nothing', (t, store) => {
    const { c1, c2 } = twoLayers(store);
    t.deepEqual(store.layerChain(NS, 'c2'), [c2, c1]);
    t.deepEqual(store.layerChain(NS, 'c1'), [c1]);
    t.throws(() => store.layerChain(NS, 'nope'), { instanceOf: NotFoundError });
    const a = store.createSnapshot(NS, 'active', 'a', 'c2', {});
    store.createSnapshot(NS, 'view', 'v', 'c2', {});
    t.throws(() => store.layerChain(NS, 'a'), { instanceOf: InvalidArgumentError });
    t.deepEqual(store.checkCommit(NS, 'a', 'c3'), a);
    t.throws(() => store.checkCommit(NS, 'a', 'c1'), { instanceOf: AlreadyExistsError });
    t.throws(() => store.checkCommit(NS, 'v', 'c3'), { instanceOf: FailedPreconditionError });
    t.throws(() => store.checkCommit(NS, 'nope', 'c3'), { instanceOf: NotFoundError });
    t.throws(() => store.checkCommit(NS, 'a', ''), { instanceOf: InvalidArgumentError });
    t.is(store.getInfo(NS, 'a').info.kind, 'active');
    t.throws(() => store.getInfo(NS, 'c3'), { instanceOf: NotFoundError });
  });

  it('removing a snapshot with children fails and says "remove"', (t, store) => {
    const { c1, c2 } = twoLayers(store);
    store.createSnapshot(NS, 'active', 'top', 'c2', {});
    const err = t.throws(() => store.remove(NS, 'c2'), { instanceOf: FailedPreconditionError });
    t.regex(err!.message, /remove/);
    t.is(store.getInfo(NS, 'c2').info.kind, 'committed', 'a refused remove keeps the snapshot');
    store.remove(NS, 'top');
    t.is(store.remove(NS, 'c2').id, c2);
    t.throws(() => store.getInfo(NS, 'c2'), { instanceOf: NotFoundError });
    t.is(store.getInfo(NS, 'c1').id, c1);
  });

  it('remove returns the id, kind and parent chain for the file work', (t, store) => {
    const { c1, c2 } = twoLayers(store);
    const top = store.createSnapshot(NS, 'active', 'top', 'c2', {});
    t.deepEqual(store.remove(NS, 'top'), { id: top.id, kind: 'active', parentIds: [c2, c1] });
    t.deepEqual(store.remove(NS, 'c2'), { id: c2, kind: 'committed', parentIds: [c1] });
    t.deepEqual(store.remove(NS, 'c1'), { id: c1, kind: 'committed', parentIds: [] });
    t.throws(() => store.remove(NS, 'c1'), { instanceOf: NotFoundError });
    t.deepEqual(store.listAll(), []);
  });

  it('update follows containerd: labels, labels.<key>, whole replacement, immutable fields', (t, store, clock) => {
    store.createSnapshot(NS, 'active', 'a', '', { 'containerd.io/gc.root': 'r' });
    const created = store.getInfo(NS, 'a').info.created;

    let info = store.updateInfo(NS, { name: 'a', labels: { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': 'r' } }, []);
    t.deepEqual(info.labels, { l1: 'v1', l2: 'v2', l3: 'v3', 'containerd.io/gc.root': 'r' });
    t.is(info.created, created);
    t.is(info.updated, clock.last());
    t.true(info.updated > created);

    info = store.updateInfo(NS, { name: 'a', labels: { l1: 'updated', l4: 'v4' } }, ['labels.l1', 'labels.l2']);
    t.deepEqual(info.labels, { l1: 'updated', l3: 'v3', 'containerd.io/gc.root': 'r' });

    info = store.updateInfo(NS, { name: 'a', labels: { l4: 'v4', 'containerd.io/gc.root': 'r' } }, ['labels']);
    t.deepEqual(info.labels, { l4: 'v4', 'containerd.io/gc.root': 'r' });

    const before = store.getInfo(NS, 'a').info;
    t.throws(() => store.updateInfo(NS, { name: 'a', labels: {} }, ['parent']), { instanceOf: InvalidArgumentError, message: /parent/ });
    t.throws(() => store.updateInfo(NS, { name: 'a', labels: {} }, ['labels', 'kind']), { instanceOf: InvalidArgumentError });
    t.deepEqual(store.getInfo(NS, 'a').info, before, 'a refused update changes nothing');
    t.deepEqual(store.getInfo(NS, 'a').info, info);
    t.throws(() => store.updateInfo(NS, { name: 'gone', labels: {} }, []), { instanceOf: NotFoundError });
  });

  it('labels may hold 4096 bytes of key and value, not one more', (t, store) => {
    const key = 'k'.repeat(96);
    store.createSnapshot(NS, 'active', 'ok', '', { [key]: 'é'.repeat(2000) });
    t.is(store.getInfo(NS, 'ok').info.labels[key]?.length, 2000);
    const err = t.throws(() => store.createSnapshot(NS, 'active', 'big', '', { [key]: 'é'.repeat(2000) + 'x' }), {
      instanceOf: InvalidArgumentError,
    });
    t.regex(err!.message, /4097 bytes.*4096/);
    t.throws(() => store.getInfo(NS, 'big'), { instanceOf: NotFoundError });
    t.throws(() => store.updateInfo(NS, { name: 'ok', labels: { x: 'y'.repeat(4096) } }, ['labels.x']), {
      instanceOf: InvalidArgumentError,
    });
    store.createSnapshot(NS, 'active', 'c-a', '', {});
    t.throws(() => store.commitActive(NS, 'c-a', 'c', LAYER, { x: 'y'.repeat(4096) }), { instanceOf: InvalidArgumentError });
    t.is(store.getInfo(NS, 'c-a').info.kind, 'active');
  });

  it('namespaces are separate key spaces', (t, store) => {
    store.createSnapshot('ns1', 'active', 'a', '', {});
    store.commitActive('ns1', 'a', 'c', LAYER, {});
    store.createSnapshot('ns2', 'active', 'a', '', {});
    t.throws(() => store.createSnapshot('ns2', 'view', 'v', 'c', {}), { instanceOf: NotFoundError, message: /"ns2"/ });
    t.deepEqual(store.walk('ns1', []).map((i) => i.name), ['c']);
    t.deepEqual(store.walk('ns2', []).map((i) => i.name), ['a']);
    t.deepEqual(store.walk('ns3', []), []);
    t.deepEqual(
      store.listAll().map((s) => [s.namespace, s.key, s.kind]),
      [
        ['ns1', 'c', 'committed'],
        ['ns2', 'a', 'active'],
      ],
    );
  });

  it('walk applies containerd filters: comma is AND, several filters are OR', (t, store) => {
    // The snapshot set and expectations of containerd's testsuite checkWalk.
    const root = { 'containerd.io/gc.root': 'check-walk' };
    store.createSnapshot(NS, 'active', 'a-np', '', root);
    store.createSnapshot(NS, 'active', 'p-tmp', '', root);
    store.commitActive(NS, 'p-tmp', 'p', LAYER, root);
    store.createSnapshot(NS, 'active', 'a', 'p', root);
    store.createSnapshot(NS, 'view', 'v', 'p', root);
    store.createSnapshot(NS, 'active', 'p-wl-tmp', '', root);
    store.commitActive(NS, 'p-wl-tmp', 'p-wl', LAYER, { l: '1', ...root });
    store.createSnapshot(NS, 'active', 'a-wl', 'p-wl', { l: '2', ...root });
    store.createSnapshot(NS, 'view', 'v-wl', 'p-wl', { l: '3', ...root });
    store.createSnapshot(NS, 'active', 'a-np-wl', '', { l: '2', ...root });
    store.createSnapshot(NS, 'active', 'no-labels', '', {});

    const cases: Array<[string[], string[]]> = [
      [['labels."containerd.io/gc.root"==check-walk'], ['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl']],
      [['kind==active,labels."containerd.io/gc.root"==check-walk'], ['a-np', 'a', 'a-wl', 'a-np-wl']],
      [['kind==view,labels."containerd.io/gc.root"==check-walk'], ['v', 'v-wl']],
      [['kind==committed,labels."containerd.io/gc.root"==check-walk'], ['p', 'p-wl']],
      [['name==p', 'name==a-np-wl'], ['p', 'a-np-wl']],
      [['name==a-wl,labels.l'], ['a-wl']],
      [['parent==p'], ['a', 'v']],
      [['parent!="",labels."containerd.io/gc.root"==check-walk'], ['a', 'v', 'a-wl', 'v-wl']],
      [['labels.l'], ['p-wl', 'a-wl', 'v-wl', 'a-np-wl']],
      [['labels.l==2'], ['a-wl', 'a-np-wl']],
      [['name~=^a-np'], ['a-np', 'a-np-wl']],
      [['labels.l!=2,kind!=committed'], ['a-np', 'a', 'v', 'v-wl', 'no-labels']],
      [[], ['a-np', 'p', 'a', 'v', 'p-wl', 'a-wl', 'v-wl', 'a-np-wl', 'no-labels']],
    ];
    for (const [filters, expected] of cases) {
      const actual = store.walk(NS, filters).map((i) => i.name);
      t.deepEqual([...actual].sort(), [...expected].sort(), filters.join(' | '));
    }
    t.throws(() => store.walk(NS, ['name==']), { instanceOf: InvalidArgumentError });
    t.throws(() => store.walk(NS, ['kind==active,']), { instanceOf: InvalidArgumentError });
  });

  it('walk reports the same infos as getInfo', (t, store) => {
    twoLayers(store);
    store.createSnapshot(NS, 'view', 'v', 'c2', { a: 'b' });
    for (const info of store.walk(NS, [])) t.deepEqual(info, store.getInfo(NS, info.name).info);
  });

  it('a transaction that throws leaves nothing behind', (t, store) => {
    twoLayers(store);
    t.throws(
      () =>
        store.transaction(() => {
          store.createSnapshot(NS, 'active', 'a', 'c2', { x: 'y' });
          store.remove(NS, 'a');
          store.createSnapshot(NS, 'active', 'b', 'c2', {});
          throw new Error('file work failed');
        }),
      { message: 'file work failed' },
    );
    t.deepEqual(store.walk(NS, []).map((i) => i.name).sort(), ['c1', 'c2']);
    const ids = store.listAll().map((s) => s.id);
    const next = store.createSnapshot(NS, 'active', 'b', 'c2', {});
    t.false(ids.includes(next.id));
  });

  it('ids are never reused after a remove', (t, store) => {
    const a = store.createSnapshot(NS, 'active', 'a', '', {});
    store.remove(NS, 'a');
    t.true(store.createSnapshot(NS, 'active', 'a', '', {}).id > a.id);
  });
}
