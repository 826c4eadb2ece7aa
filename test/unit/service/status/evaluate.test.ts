import test from 'ava';
import { verityTarget } from '../../../../snapshotter/layer/verity/table.js';
import type { DmTarget } from '../../../../snapshotter/native/index.js';
import type { MountInfoEntry } from '../../../../snapshotter/service/mounts/mountinfo.js';
import { snapshotterDeviceUuid } from '../../../../snapshotter/service/mounts/verity-identity.js';
import { countByState, evaluateStatus } from '../../../../snapshotter/service/status/evaluate.js';
import type { DeviceObservation, LayerObservation, NodeObservation } from '../../../../snapshotter/service/status/observe.js';

const SCOPE = '0123456789abcdef';
const ROOT = '5e'.repeat(32);
const OTHER_ROOT = 'a0'.repeat(32);
const IMAGE = { dev: 2049n, ino: 11n };
const TREE = { dev: 2049n, ino: 12n };
const available = { available: true as const, version: '4.47.0' };
const missing = { available: false as const, reason: 'device-mapper is not available in this kernel', hint: undefined };

function table(rootHash = ROOT): DmTarget[] {
  return [verityTarget({ dataDevice: '7:0', hashDevice: '7:1', dataBlocks: 10, rootHash })];
}

function device(id: number, options: { status?: 'V' | 'C'; rootHash?: string; uuid?: string } = {}): DeviceObservation {
  return {
    name: `integrity-${options.rootHash ?? ROOT}-00000000000000${String(id).padStart(2, '0')}`,
    node: `/dev/dm-${id}`,
    openCount: 1,
    observation: {
      uuid: options.uuid ?? snapshotterDeviceUuid(SCOPE, id),
      table: table(options.rootHash),
      status: [{ start: 0, length: 80, type: 'verity', params: options.status ?? 'V' }],
      data: IMAGE,
      hash: TREE,
    },
  };
}

function mountOf(id: number, source: string): MountInfoEntry {
  return { id: 100 + id, parentId: 1, root: '/', mountPoint: `/var/lib/ci/m/${id}`, fsType: 'erofs', source, superOptions: 'ro' };
}

function layer(id: number, overrides: Partial<LayerObservation> = {}): LayerObservation {
  return {
    id,
    record: { id, namespace: 'k8s.io', name: `sha256:${id}`, rootHash: ROOT, images: id === 1 ? ['registry.test/app:1'] : [] },
    mounts: [mountOf(id, `/dev/dm-${id}`)],
    device: device(id),
    foreignDevice: false,
    expectation: { rootHash: ROOT, dataBlocks: 10, image: IMAGE, hashTree: TREE },
    ...overrides,
  };
}

function report(layers: LayerObservation[], mode: 'required' | 'auto' | 'off' = 'required', others: NodeObservation['others'] = []) {
  return evaluateStatus({ verity: mode === 'off' || layers.some((l) => l.device) ? available : missing, layers, others }, mode, SCOPE);
}

test('a layer on its own device with the expected table and status V is verified', (t) => {
  const r = report([layer(1)]);
  t.deepEqual(r.layers, [
    {
      id: 1,
      namespace: 'k8s.io',
      name: 'sha256:1',
      images: ['registry.test/app:1'],
      mountPoint: '/var/lib/ci/m/1',
      device: { name: device(1).name, node: '/dev/dm-1', status: 'V' },
      expectedRootHash: ROOT,
      tableRootHash: ROOT,
      rootHashMatches: true,
      state: 'verified',
      problems: [],
    },
  ]);
  t.true(r.ok);
  t.deepEqual(r.verity, { mode: 'required', available: true, detail: 'device-mapper 4.47.0' });
});

test('status C is corrupted, mounted or kept after a refusal; the node is not ok', (t) => {
  const r = report([layer(1, { device: device(1, { status: 'C' }) }), layer(2, { mounts: [], device: device(2, { status: 'C' }) })]);
  t.deepEqual(r.layers.map((l) => [l.id, l.state, l.mountPoint, l.device?.status]), [
    [1, 'corrupted', '/var/lib/ci/m/1', 'C'],
    [2, 'corrupted', null, 'C'],
  ]);
  t.regex(r.layers[0]!.problems[0]!, /status C/);
  t.regex(r.layers[1]!.problems.join(' '), /kept as the record of the refusal/);
  t.false(r.ok);
});

test('another root hash in the table is unexpected, and says so', (t) => {
  const r = report([layer(1, { device: device(1, { rootHash: OTHER_ROOT }) })]);
  t.like(r.layers[0], { state: 'unexpected', tableRootHash: OTHER_ROOT, rootHashMatches: false });
  t.regex(r.layers[0]!.problems.join(' '), new RegExp(`checks root hash ${OTHER_ROOT}, not the expected ${ROOT}`));
  t.false(r.ok);
});

test('unexpected: a foreign device, stacked mounts, a layer the metadata does not know, a device of another tool', (t) => {
  const r = report([
    layer(1, { device: undefined, foreignDevice: true }),
    layer(2, { mounts: [mountOf(2, '/dev/dm-2'), mountOf(2, '/dev/dm-2')] }),
    layer(3, { record: undefined, expectation: undefined }),
    layer(4, { device: device(4, { uuid: '' }) }),
  ]);
  t.deepEqual(r.layers.map((l) => l.state), ['unexpected', 'unexpected', 'unexpected', 'unexpected']);
  t.regex(r.layers[0]!.problems[0]!, /mounted from \/dev\/dm-1, a device-mapper device the snapshotter did not make for this layer/);
  t.regex(r.layers[1]!.problems[0]!, /2 mounts are stacked/);
  t.regex(r.layers[2]!.problems[0]!, /no committed snapshot with id 3/);
  t.regex(r.layers[3]!.problems[0]!, /uuid is ""/);
});

test('without dm-verity: unverified where the mode allows it, unexpected under required', (t) => {
  const plain = (id: number) => layer(id, { device: undefined, mounts: [mountOf(id, `/dev/loop${id}`)] });
  const auto = report([plain(1)], 'auto');
  t.like(auto.layers[0], { state: 'unverified', device: null, rootHashMatches: null });
  t.deepEqual(auto.layers[0]!.problems, ['mounted without dm-verity (verity = "auto"; device-mapper is not available in this kernel)']);
  t.true(auto.ok, 'auto reports, but does not fail');
  t.like(report([plain(1)], 'off').layers[0], { state: 'unverified' });
  const required = report([plain(1)], 'required');
  t.like(required.layers[0], { state: 'unexpected', problems: ['mounted without dm-verity although verity = "required"'] });
  t.false(required.ok);
});

test('devices of integrityctl layer mount: listed, and C makes the node not ok', (t) => {
  const others = [
    { device: device(7, { uuid: '' }), mountPoints: ['/mnt/a'] },
    { device: device(8, { uuid: '', status: 'C' }), mountPoints: [] },
  ];
  const r = report([], 'auto', others);
  t.deepEqual(r.devices.map((d) => [d.node, d.status, d.mountPoints, d.tableRootHash]), [
    ['/dev/dm-7', 'V', ['/mnt/a'], ROOT],
    ['/dev/dm-8', 'C', [], ROOT],
  ]);
  t.false(r.ok);
  t.true(report([], 'auto', others.slice(0, 1)).ok);
});

test('counts by state include every state', (t) => {
  t.deepEqual(countByState(report([layer(1), layer(2, { device: device(2, { status: 'C' }) })])), { verified: 1, corrupted: 1, unexpected: 0, unverified: 0 });
  t.deepEqual(countByState(report([])), { verified: 0, corrupted: 0, unexpected: 0, unverified: 0 });
});
