/**
 * Real layer mounts: MountManager over ErofsMounter with both backings, the
 * kernel's mount table as the witness, and a restart (a second manager) that
 * must adopt what is mounted instead of mounting it again.
 */
import test, { type ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { ErofsMounter, kernelAtLeast } from '../../../../snapshotter/service/mounts/erofs-mounter.js';
import { MountManager } from '../../../../snapshotter/service/mounts/manager.js';
import { parseMountInfo } from '../../../../snapshotter/service/mounts/mountinfo.js';
import { makeErofsImage } from '../../../support/mkfs-erofs.js';
import { fakeLayer } from '../../../support/snapshotter-fakes.js';
import { hostSkipReason } from '../../native/fixture.js';

const skip = hostSkipReason();
if (skip) test('layer mounts', (t) => t.pass(`skipped: ${skip}`));

function mountsUnder(dir: string) {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(`${dir}/`));
}

async function setup(t: ExecutionContext, backing: 'loop' | 'file') {
  const dir = mkdtempSync(join(tmpdir(), 'layer-mounts-'));
  t.teardown(() => {
    for (const m of mountsUnder(dir).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(dir, { recursive: true, force: true });
  });
  const images = new Map<number, string>();
  for (const id of [1, 2]) {
    images.set(id, await makeErofsImage(join(dir, `${id}.erofs`), join(dir, `src${id}`), { [`layer-${id}`]: `content ${id}\n` }));
  }
  const mountDir = join(dir, 'm');
  mkdirSync(mountDir);
  const manager = () =>
    new MountManager({ dir: mountDir, layerOf: (id) => fakeLayer(id, images.get(id)!), mounter: new ErofsMounter(backing), logger: silentLogger });
  return { dir, mountDir, manager };
}

const backings = (['loop', 'file'] as const).filter((b) => b === 'loop' || kernelAtLeast(release(), [6, 12]));

for (const backing of backings) {
  (skip ? test.skip : test)(`${backing}: mount on first use, adopt after restart, unmount when unused`, async (t) => {
    const { dir, mountDir, manager } = await setup(t, backing);
    const first = manager();
    await first.acquire([2, 1]);
    await first.acquire([1]);
    t.is(await readFile(join(mountDir, '1', 'layer-1'), 'utf8'), 'content 1\n');
    t.is(await readFile(join(mountDir, '2', 'layer-2'), 'utf8'), 'content 2\n');
    // The two layers mount in parallel, so in either order.
    const before = mountsUnder(dir).sort((a, b) => a.mountPoint.localeCompare(b.mountPoint));
    t.deepEqual(before.map((m) => [m.mountPoint, m.fsType]), [
      [join(mountDir, '1'), 'erofs'],
      [join(mountDir, '2'), 'erofs'],
    ]);
    if (backing === 'loop') t.true(before.every((m) => /^\/dev\/loop\d+$/.test(m.source)));
    else t.true(before.every((m) => m.source.endsWith('.erofs')));

    // A restart: the new manager only knows what the metadata says is needed.
    const second = manager();
    await second.restore(new Map([[1, 2]]));
    const after = mountsUnder(dir);
    t.deepEqual(after.map((m) => m.id), [before[0]!.id], 'layer 1 adopted as is, layer 2 unmounted');
    t.false(existsSync(join(mountDir, '2')));

    await second.release([1]);
    t.is(mountsUnder(dir).length, 1);
    await second.release([1]);
    t.deepEqual(mountsUnder(dir), []);
    t.false(existsSync(join(mountDir, '1')));
    if (backing === 'loop') {
      const loop = before[0]!.source;
      const status = spawnSync('losetup', ['--noheadings', '--output', 'BACK-FILE', loop], { encoding: 'utf8' });
      t.false(status.stdout.includes(join(dir, '1.erofs')), 'autoclear freed the loop device');
    }
  });
}

(skip ? test.skip : test)('a mount of the wrong image is replaced on restore', async (t) => {
  const { dir, mountDir, manager } = await setup(t, 'loop');
  const swapped = new MountManager({
    dir: mountDir,
    layerOf: (id) => fakeLayer(id, join(dir, '2.erofs')),
    mounter: new ErofsMounter('loop'),
    logger: silentLogger,
  });
  await swapped.acquire([1]);
  t.is(await readFile(join(mountDir, '1', 'layer-2'), 'utf8'), 'content 2\n');
  await manager().restore(new Map([[1, 1]]));
  t.is(await readFile(join(mountDir, '1', 'layer-1'), 'utf8'), 'content 1\n');
  t.is(mountsUnder(dir).length, 1);
});
