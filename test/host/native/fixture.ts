/**
 * What the native host tests share: the reason they cannot run here (if any),
 * and temp dirs, images and mounts that are cleaned up after each test.
 */
import type { ExecutionContext } from 'ava';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unmount } from '../../../snapshotter/native/mount.js';
import { makeErofsImage, mkfsErofsMissing, type Tree } from '../../support/mkfs-erofs.js';
import { nativeAddonMissing } from '../../support/native-addon.js';

/** Why these tests cannot run on this machine, or undefined. */
export function hostSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount, loop devices)';
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control (loop module not loaded)';
  const noMkfs = mkfsErofsMissing();
  if (noMkfs) return noMkfs;
  return nativeAddonMissing();
}

export function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'native-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An EROFS image of `tree` in a fresh temp dir. */
export async function image(t: ExecutionContext, tree: Tree): Promise<string> {
  const dir = tempDir(t);
  return makeErofsImage(join(dir, 'image.erofs'), join(dir, 'source'), tree);
}

/**
 * A new empty directory to mount on; at teardown whatever is still mounted
 * there is detached. Registered before the mount, so teardown (which runs
 * last-registered first) unmounts before the temp dir is removed.
 */
export function mountPoint(t: ExecutionContext): string {
  const dir = join(tempDir(t), 'mnt');
  mkdirSync(dir);
  t.teardown(async () => {
    while (await isMountPoint(dir)) await unmount(dir, ['MNT_DETACH']);
  });
  return dir;
}

export async function isMountPoint(dir: string): Promise<boolean> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  return mountinfo.split('\n').some((line) => line.split(' ')[4] === dir);
}
