import test from 'ava';
import fc from 'fast-check';
import { InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import { DM_NAME_MAX_BYTES, DM_UUID_MAX_BYTES } from '../../../../snapshotter/native/index.js';
import {
  parseSnapshotterDeviceUuid,
  parseVerityDeviceName,
  snapshotterDeviceUuid,
  snapshotterScope,
  verityDeviceName,
} from '../../../../snapshotter/service/mounts/verity-identity.js';

const ROOT = 'ab'.repeat(32);

test('a device name holds the root hash and a tag of the image path, and stays within the kernel limit', (t) => {
  const name = verityDeviceName(ROOT.toUpperCase(), '/var/lib/containerd-integrity/snapshots/7/layer.erofs');
  t.regex(name, new RegExp(`^integrity-${ROOT}-[0-9a-f]{16}$`));
  t.is(name.length, 91);
  t.true(name.length <= DM_NAME_MAX_BYTES);
  t.deepEqual(parseVerityDeviceName(name), { rootHash: ROOT, imageTag: name.slice(-16) });
});

test('every root hash and path make a name within the kernel limit that gives the root hash back', (t) => {
  fc.assert(
    fc.property(fc.stringMatching(/^[0-9a-fA-F]{64}$/), fc.string({ minLength: 1, maxLength: 4096 }), (hash, path) => {
      const name = verityDeviceName(hash, `/${path}`);
      return Buffer.byteLength(name) <= DM_NAME_MAX_BYTES && parseVerityDeviceName(name)?.rootHash === hash.toLowerCase() && name === verityDeviceName(hash.toLowerCase(), `/${path}`);
    }),
  );
  t.pass();
});

test('identical content in two layer files gets two devices; another root hash for one file another device', (t) => {
  const a = verityDeviceName(ROOT, '/root/snapshots/1/layer.erofs');
  const b = verityDeviceName(ROOT, '/root/snapshots/2/layer.erofs');
  const c = verityDeviceName('cd'.repeat(32), '/root/snapshots/1/layer.erofs');
  t.not(a, b);
  t.not(a, c);
  t.is(a.slice(-16), c.slice(-16), 'the path tag names the file whatever the root hash');
});

test('a root hash that is not 64 hex digits, or a relative path, is refused before it becomes a name', (t) => {
  for (const bad of ['', 'abc', `${ROOT}0`, `${ROOT.slice(1)}g`, `${ROOT.slice(2)} x`]) {
    t.throws(() => verityDeviceName(bad, '/x'), { instanceOf: InvalidArgumentError, message: /is not 64 hex digits/ });
  }
  t.throws(() => verityDeviceName(ROOT, 'layer.erofs'), { instanceOf: InvalidArgumentError, message: /not absolute/ });
});

test('names that are not ours do not parse', (t) => {
  for (const name of ['integrity-test-verity', `integrity-${ROOT}`, `integrity-${ROOT}-0123`, `other-${ROOT}-0123456789abcdef`]) {
    t.is(parseVerityDeviceName(name), undefined, name);
  }
});

test('a snapshotter uuid names its state root and the layer, and round-trips', (t) => {
  const scope = snapshotterScope('/var/lib/containerd-integrity');
  t.regex(scope, /^[0-9a-f]{16}$/);
  t.not(scope, snapshotterScope('/var/lib/other'));
  const uuid = snapshotterDeviceUuid(scope, 42);
  t.is(uuid, `containerd-integrity:${scope}:42`);
  t.true(uuid.length <= DM_UUID_MAX_BYTES);
  t.deepEqual(parseSnapshotterDeviceUuid(uuid), { scope, layer: 42 });
  for (const other of ['', 'CRYPT-VERITY-abc', `containerd-integrity:${scope}:0`, `containerd-integrity:${scope}:x`, `containerd-integrity:short:1`]) {
    t.is(parseSnapshotterDeviceUuid(other), undefined, other);
  }
});
