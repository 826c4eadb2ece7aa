import test from 'ava';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../snapshotter/core/log.js';
import { tmpfsBytesFor, UnpackScratch, type ScratchMounter } from '../../../snapshotter/service/unpack-scratch.js';

/** Records the mount calls; the directory stays a plain one (unit tests do not mount). */
function recordingMounter(mounted = false) {
  const calls: string[] = [];
  const mounter: ScratchMounter = {
    mountTmpfs: async (dir, bytes) => void calls.push(`mount ${dir} ${bytes}`),
    unmount: async (dir) => void calls.push(`unmount ${dir}`),
    isMounted: async () => mounted,
  };
  return { calls, mounter };
}

async function scratchIn(t: { teardown(fn: () => Promise<void>): void }, limitBytes: number, mounted = false) {
  const root = await mkdtemp(join(tmpdir(), 'scratch-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const { calls, mounter } = recordingMounter(mounted);
  const dir = join(root, 'unpack');
  const scratch = new UnpackScratch({ dir, limitBytes, mounter, logger: silentLogger });
  await scratch.start();
  return { scratch, calls, dir };
}

test('start mounts a tmpfs of the limit; one left by an earlier daemon is replaced, not stacked on', async (t) => {
  const fresh = await scratchIn(t, 1000);
  t.deepEqual(fresh.calls, [`mount ${fresh.dir} 1000`]);
  const left = await scratchIn(t, 1000, true);
  t.deepEqual(left.calls, [`unmount ${left.dir}`, `mount ${left.dir} 1000`]);
  await left.scratch.close();
  t.is(left.calls.at(-1), `unmount ${left.dir}`);
  await fresh.scratch.close();
  t.deepEqual(fresh.calls, [`mount ${fresh.dir} 1000`], 'nothing to unmount when something else already did');
});

test('reservations never add up to more than the limit; a release frees the room and the files', async (t) => {
  const { scratch, dir } = await scratchIn(t, 10_000);
  const a = await scratch.reserve(1, 6_000);
  t.deepEqual(a, { upper: join(dir, '1', 'fs'), work: join(dir, '1', 'work') });
  t.is((await stat(a!.upper)).mode & 0o777, 0o755);
  t.is(await scratch.reserve(2, 5_000), undefined, 'does not fit beside the first');
  t.is(scratch.paths(2), undefined);
  t.deepEqual(await scratch.reserve(1, 6_000), a, 'reserving again for the same snapshot takes no more room');
  await scratch.release(1);
  t.is(scratch.paths(1), undefined);
  t.deepEqual(await readdir(dir), []);
  t.truthy(await scratch.reserve(2, 10_000), 'the room is free again');
  await scratch.release(3);
});

test('what a layer can take on a tmpfs: its data plus a page per inode', (t) => {
  t.is(tmpfsBytesFor({ dataBytes: 0, inodes: 0 }), 4096);
  t.is(tmpfsBytesFor({ dataBytes: 10_000, inodes: 3 }), 10_000 + 4 * 4096);
});
