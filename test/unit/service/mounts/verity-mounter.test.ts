/**
 * The VerityMounter's modes on a kernel without device-mapper (the dm-verity
 * paths need a kernel that has it: test/vm/snapshotter-verity.test.ts). The
 * plain mounter is the FakeMounter, so no root is needed.
 */
import test from 'ava';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { FailedPreconditionError } from '../../../../snapshotter/core/errors.js';
import type { VerityMode } from '../../../../snapshotter/core/config.js';
import { createLogger } from '../../../../snapshotter/core/log.js';
import { MountManager } from '../../../../snapshotter/service/mounts/manager.js';
import { VerityMounter, type RefusalReason } from '../../../../snapshotter/service/mounts/verity-mounter.js';
import { FakeMounter, fakeLayer } from '../../../support/snapshotter-fakes.js';

function setup(mode: VerityMode) {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  const logger = createLogger('test', { level: 'debug', destination });
  const plain = new FakeMounter();
  const refusals: [RefusalReason, number][] = [];
  const mounter = new VerityMounter({
    mode,
    availability: { available: false, reason: 'device-mapper is not available in this kernel', hint: 'load the modules (modprobe dm_verity)' },
    plain,
    scope: '0123456789abcdef',
    imageOf: (id) => `/layers/${id}.erofs`,
    logger,
    onRefusal: (reason, layer) => refusals.push([reason, layer.id]),
  });
  return { mounter, plain, refusals, lines };
}

test('required: every layer mount fails with FAILED_PRECONDITION naming the layer and the fix; nothing is mounted', async (t) => {
  const { mounter, plain, refusals, lines } = setup('required');
  t.false(mounter.verity);
  t.like(lines[0], { level: 50, verity: 'required', msg: 'dm-verity is not available: every layer mount will be refused' });
  const err = await t.throwsAsync(mounter.mount(fakeLayer(3), '/m/3'), { instanceOf: FailedPreconditionError });
  t.is(err!.message, 'cannot mount layer "layer-3" in namespace "default": verity = "required", but device-mapper is not available in this kernel');
  t.regex(err!.hint!, /^load the modules \(modprobe dm_verity\), then restart the snapshotter; or, to run layers without dm-verity on this node, set verity = "auto"/);
  t.deepEqual(plain.calls, []);
  t.deepEqual(refusals, [['verity_unavailable', 3]]);
  t.like(lines.at(-1), { level: 50, ns: 'default', chainId: 'layer-3', layer: 3, reason: 'verity_unavailable', msg: 'layer refused' });
});

test('required: a layer mounted before (adopted at restart) gets no new user', async (t) => {
  const { mounter, refusals } = setup('required');
  await t.throwsAsync(mounter.check(fakeLayer(4), '/m/4'), { instanceOf: FailedPreconditionError, message: /verity = "required"/ });
  t.deepEqual(refusals, [['verity_unavailable', 4]]);
});

test('required: the manager refuses the whole chain and keeps no reference', async (t) => {
  const { mounter } = setup('required');
  const dir = mkdtempSync(join(tmpdir(), 'verity-mounts-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const manager = new MountManager({ dir, layerOf: (id) => fakeLayer(id), mounter, logger: createLogger('test', { level: 'silent' }) });
  await t.throwsAsync(manager.acquire([2, 1]), { instanceOf: FailedPreconditionError });
  t.is(manager.references(1), 0);
  t.is(manager.references(2), 0);
  t.deepEqual(readdirSync(dir), [], 'no mount point is left');
});

test('auto: mounts without dm-verity, with a warning per layer naming it', async (t) => {
  const { mounter, plain, refusals, lines } = setup('auto');
  t.like(lines[0], { level: 40, verity: 'auto', msg: 'dm-verity is not available: layers will be mounted without it' });
  await mounter.mount(fakeLayer(1), '/m/1');
  await mounter.mount(fakeLayer(2), '/m/2');
  await mounter.unmount('/m/2');
  await mounter.mount(fakeLayer(2), '/m/2');
  t.deepEqual(plain.calls, ['mount /layers/1.erofs /m/1', 'mount /layers/2.erofs /m/2', 'unmount /m/2', 'mount /layers/2.erofs /m/2']);
  const warnings = lines.filter((l) => l.msg === 'layer mounted WITHOUT dm-verity: it is not available (verity = "auto")');
  t.deepEqual(warnings.map((w) => [w.level, w.layer, w.chainId, w.reason]), [
    [40, 1, 'layer-1', 'device-mapper is not available in this kernel'],
    [40, 2, 'layer-2', 'device-mapper is not available in this kernel'],
    [20, 2, 'layer-2', 'device-mapper is not available in this kernel'],
  ], 'a warning per layer, not per mount');
  await mounter.check(fakeLayer(1), '/m/1');
  t.true(await mounter.isMountOf((await mounter.mounts())[0]!, fakeLayer(1)));
  await mounter.unmount('/m/1');
  t.deepEqual(plain.mounted(), ['/m/2']);
  await mounter.sweep();
  t.deepEqual(refusals, []);
});

test('off: plain mounts, no warnings', async (t) => {
  const { mounter, plain, lines } = setup('off');
  await mounter.mount(fakeLayer(1), '/m/1');
  t.deepEqual(plain.mounted(), ['/m/1']);
  t.deepEqual(lines.filter((l) => (l.level as number) >= 40), []);
});
