/**
 * `integrityctl layer mount` / `layer umount` / `status` on a layer from our
 * own converter, in the VM (see guest/layer-mount.ts): reads through
 * dm-verity, EIO and status C after one flipped byte, a wrong root hash
 * refused with the layer named and nothing left behind.
 */
import type { StatusReport } from '../../snapshotter/service/status/evaluate.js';
import type { LayerMountReport } from './guest/layer-mount.js';
import { runGuestReport, vmTest } from './support/vm-test.js';

vmTest('integrityctl layer mount: verity-backed reads, EIO and status C after a flipped byte, a wrong root hash refused', async (t) => {
  const r = await runGuestReport<LayerMountReport>(t, 'layer-mount', 120_000);

  t.is(r.mount.status, 0, r.mount.stderr);
  t.is(r.mounted?.device, `integrity-${r.rootHash}-${r.mounted?.device.slice(-16)}`);
  t.regex(r.mounted?.device ?? '', /^integrity-[0-9a-f]{64}-[0-9a-f]{16}$/);
  t.regex(r.mounted?.node ?? '', /^\/dev\/dm-\d+$/);
  t.true(r.helloMatches, 'a small file reads back');
  t.true(r.dataMatches, 'a multi-block file reads back');

  const before = JSON.parse(r.statusBefore.stdout) as StatusReport;
  t.is(r.statusBefore.status, 0, r.statusBefore.stderr);
  t.true(before.verity.available);
  t.deepEqual(before.devices.map((d) => [d.name, d.node, d.status, d.tableRootHash]), [[r.mounted?.device, r.mounted?.node, 'V', r.rootHash]]);

  t.true(r.flippedOffset > 0);
  t.is(r.dataReadAfterFlip, 'errno:EIO', 'the flipped block fails to read');
  t.true(r.helloAfterFlipMatches, 'other blocks still read');
  const after = JSON.parse(r.statusAfter.stdout) as StatusReport;
  t.is(r.statusAfter.status, 1, 'status exits 1 when a device is corrupted');
  t.is(after.devices[0]?.status, 'C');
  t.false(after.ok);

  t.is(r.umount.status, 0, r.umount.stderr);
  t.like(JSON.parse(r.umount.stdout), { device: r.mounted?.device, status: 'C', deferred: false });
  t.deepEqual(r.devicesAfterUmount, [], 'the device is gone');
  t.deepEqual(r.loopsAfterUmount, [], 'its loop devices went with it');

  t.is(r.wrongRoot.run.status, 1);
  t.regex(r.wrongRoot.run.stderr, /dm-verity refuses layer \/tmp\/layer-mount-\w+\/intact\.erofs: its data block 0 does not match expected root hash [0-9a-f]{64}/);
  t.regex(r.wrongRoot.run.stderr, /hint: check --root-hash/);
  t.deepEqual(r.wrongRoot.devices, [], 'a wrong root hash leaves no device');
  t.deepEqual(r.wrongRoot.loops, [], 'and no loop device');

  t.is(r.oneBlock.hashFileBytes, 0, 'a one-block image has an empty hash tree');
  t.is(r.oneBlock.mount.status, 0, r.oneBlock.mount.stderr);
  t.is(r.oneBlock.read, 'workdir');
  t.is(r.oneBlock.umount.status, 0, r.oneBlock.umount.stderr);

  t.is(r.shortHashFile.run.status, 1);
  t.regex(r.shortHashFile.run.stderr, /hash tree .*short\.verity has 100 bytes, but the tree of a \d+-block image has 4096/);
  t.deepEqual(r.shortHashFile.devices, []);
  t.deepEqual(r.shortHashFile.loops, []);
});
