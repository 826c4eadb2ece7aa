import test from 'ava';
import { mountDataBytes, MOUNT_OPTIONS_MAX_BYTES, snapshotMounts } from '../../../../snapshotter/service/mounts/snapshot-mounts.js';

const dirs = { upper: '/r/snapshots/9/fs', work: '/r/snapshots/9/work' };

test('an active snapshot without parent is a writable bind of its upper dir', (t) => {
  t.deepEqual(snapshotMounts('active', dirs, []), [{ type: 'bind', source: dirs.upper, options: ['rw', 'rbind'] }]);
});

test('a view without parent is a read-only bind of its empty dir', (t) => {
  t.deepEqual(snapshotMounts('view', dirs, []), [{ type: 'bind', source: dirs.upper, options: ['ro', 'rbind'] }]);
});

test('a view of one layer is a read-only bind of the layer mount', (t) => {
  t.deepEqual(snapshotMounts('view', dirs, ['/r/m/3']), [{ type: 'bind', source: '/r/m/3', options: ['ro', 'rbind'] }]);
});

test('a view of several layers is an overlay of lower dirs only, nearest first', (t) => {
  t.deepEqual(snapshotMounts('view', dirs, ['/r/m/3', '/r/m/2', '/r/m/1']), [
    { type: 'overlay', source: 'overlay', options: ['index=off', 'lowerdir=/r/m/3:/r/m/2:/r/m/1'] },
  ]);
});

test('an active snapshot on layers is one overlay with upper and work dir', (t) => {
  t.deepEqual(snapshotMounts('active', dirs, ['/r/m/3']), [
    {
      type: 'overlay',
      source: 'overlay',
      options: ['index=off', `workdir=${dirs.work}`, `upperdir=${dirs.upper}`, 'lowerdir=/r/m/3'],
    },
  ]);
});

function activeOn(mountDir: string, layers: number) {
  const lowers = Array.from({ length: layers }, (_, i) => `${mountDir}/${10000 + i}`);
  return snapshotMounts('active', { upper: '/var/lib/containerd-integrity/snapshots/20000/fs', work: '/var/lib/containerd-integrity/snapshots/20000/work' }, lowers)[0]!;
}

// containerd's mount.All rewrites the lowerdir list only from 3584 bytes on.
const UNSHORTENED_MAX = MOUNT_OPTIONS_MAX_BYTES - 512;

test('with the default mount dir, images of up to 90 layers need no shortening by containerd', (t) => {
  t.true(mountDataBytes(activeOn('/var/lib/containerd-integrity/m', 90)) < UNSHORTENED_MAX);
});

test('a short mount dir takes 128 layers without shortening', (t) => {
  const mount = activeOn('/run/ci/m', 128);
  const bytes = mountDataBytes(mount);
  t.is(bytes, Buffer.byteLength(mount.options.join(',')));
  t.true(bytes < UNSHORTENED_MAX, `${bytes} bytes`);
});

test('flags are not mount data', (t) => {
  t.is(mountDataBytes({ type: 'bind', source: '/x', options: ['ro', 'rbind'] }), 0);
});
