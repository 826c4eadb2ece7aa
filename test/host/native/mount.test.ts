/** mount(2)/umount2(2) on the real kernel: EROFS from a file, overlay over EROFS, bind mounts, errors. */
import test, { type ExecutionContext } from 'ava';
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { release } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, SystemCallError } from '../../../snapshotter/core/errors.js';
import { attachLoop } from '../../../snapshotter/native/loop.js';
import { MOUNT_DATA_MAX_BYTES, MountFlags, mount, unmount } from '../../../snapshotter/native/mount.js';
import { hostSkipReason, image, isMountPoint, mountPoint, tempDir } from './fixture.js';

const skip = hostSkipReason();
const hostTest = skip ? test.skip : test;
if (skip) test('native mount tests', (t) => t.pass(`skipped: ${skip}`));

/** Mounts an EROFS image through a read-only autoclear loop, the way the snapshotter mounts layers. */
async function mountErofs(t: ExecutionContext, tree: Record<string, string>): Promise<string> {
  const file = await image(t, tree);
  const target = mountPoint(t);
  const loop = await attachLoop(file);
  try {
    await mount(loop.device, target, 'erofs', ['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID']);
  } finally {
    await loop.close();
  }
  return target;
}

hostTest('an overlay of two EROFS mounts shows the upper layer first', async (t) => {
  const upper = await mountErofs(t, { 'a.txt': 'a\n', 'shared.txt': 'from upper\n' });
  const lower = await mountErofs(t, { 'b.txt': 'b\n', 'shared.txt': 'from lower\n' });
  const target = mountPoint(t);
  await mount('overlay', target, 'overlay', ['MS_RDONLY'], `lowerdir=${upper}:${lower}`);
  t.true(await isMountPoint(target));
  t.deepEqual(readdirSync(target).sort(), ['a.txt', 'b.txt', 'shared.txt']);
  t.is(readFileSync(join(target, 'shared.txt'), 'utf8'), 'from upper\n');
  t.is(readFileSync(join(target, 'b.txt'), 'utf8'), 'b\n');
  await unmount(target);
  t.false(await isMountPoint(target));
});

const [major = 0, minor = 0] = release().split('.').map((part) => Number.parseInt(part, 10));
const fileBacked = major > 6 || (major === 6 && minor >= 12);
(fileBacked ? hostTest : test.skip)('EROFS mounts straight from an image file (Linux >= 6.12)', async (t) => {
  const file = await image(t, { 'etc/os-release': 'ID=test\n' });
  const target = mountPoint(t);
  await mount(file, target, 'erofs', MountFlags.MS_RDONLY);
  t.is(readFileSync(join(target, 'etc/os-release'), 'utf8'), 'ID=test\n');
  await unmount(target);
  t.false(await isMountPoint(target));
});

hostTest('a bind mount takes no data and MNT_DETACH unmounts it', async (t) => {
  const source = tempDir(t);
  mkdirSync(join(source, 'inside'));
  const target = mountPoint(t);
  await mount(source, target, 'none', ['MS_BIND']);
  t.deepEqual(readdirSync(target), ['inside']);
  await unmount(target, ['MNT_DETACH']);
  t.false(await isMountPoint(target));
});

hostTest('mounting onto a missing directory is ENOENT naming the target', async (t) => {
  const file = await image(t, { 'a.txt': 'a' });
  const missing = join(tempDir(t), 'no-such-dir');
  const err = await t.throwsAsync(mount(file, missing, 'erofs', ['MS_RDONLY']), { instanceOf: SystemCallError });
  t.is(err?.errno, 'ENOENT');
  t.is(err?.syscall, 'mount');
  t.is(err?.path, missing);
  t.true(err?.message.startsWith(`mount ${missing}: ENOENT: `));
  t.regex(err?.hint ?? '', /does not exist/);
});

hostTest('unmounting a directory that is not a mount point is EINVAL', async (t) => {
  const dir = tempDir(t);
  const err = await t.throwsAsync(unmount(dir), { instanceOf: SystemCallError });
  t.is(err?.errno, 'EINVAL');
  t.is(err?.syscall, 'umount2');
  t.is(err?.path, dir);
  t.is(err?.message, `umount2 ${dir}: EINVAL: not a mount point (or bad unmount flags)`);
});

hostTest('mount data longer than one page is EINVAL before the kernel can cut it short', async (t) => {
  const target = mountPoint(t);
  // One long path of short components, `bytes` long in all.
  const lowerdirs = (bytes: number) => `lowerdir=${`/${'x'.repeat(63)}`.repeat(64)}`.slice(0, bytes);
  const tooLong = lowerdirs(MOUNT_DATA_MAX_BYTES + 1);
  t.is(Buffer.byteLength(tooLong), 4096);
  const err = await t.throwsAsync(mount('overlay', target, 'overlay', ['MS_RDONLY'], tooLong), { instanceOf: SystemCallError });
  t.is(err?.errno, 'EINVAL');
  t.is(err?.syscall, 'mount');
  t.regex(err?.message ?? '', /4096 bytes/);
  // At the limit the call reaches the kernel, which answers for itself: /xxx... does not exist.
  const fits = lowerdirs(MOUNT_DATA_MAX_BYTES);
  const kernel = await t.throwsAsync(mount('overlay', target, 'overlay', ['MS_RDONLY'], fits), { instanceOf: SystemCallError });
  t.is(kernel?.errno, 'ENOENT');
});

hostTest('flag names are checked, numbers pass through', async (t) => {
  const target = mountPoint(t);
  await t.throwsAsync(mount('none', target, 'tmpfs', ['MS_RDONLY', 'MS_BOGUS' as 'MS_RDONLY']), {
    instanceOf: InvalidArgumentError,
    message: /unknown mount flag "MS_BOGUS"/,
  });
  await t.throwsAsync(unmount(target, 1.5), { instanceOf: InvalidArgumentError });
  await mount('none', target, 'tmpfs', MountFlags.MS_NODEV | MountFlags.MS_NOSUID, 'size=1m,mode=0700');
  t.true(await isMountPoint(target));
  await unmount(target);
});
