/**
 * Mounts layer images with the native addon: EROFS read-only, either straight
 * from the image file (kernel 6.12 and later read EROFS from a regular file)
 * or through a read-only loop device with autoclear, so the device goes away
 * with the mount.
 */
import { stat } from 'node:fs/promises';
import { release } from 'node:os';
import { attachLoop, loopStatus, mount, unmount } from '../../native/index.js';
import { FailedPreconditionError, SystemCallError } from '../../core/errors.js';
import type { MountBacking } from '../../core/config.js';
import type { LayerMounter, MountableLayer } from './manager.js';
import { readMountInfo, type MountInfoEntry } from './mountinfo.js';

/** The first kernel whose EROFS mounts regular files (file-backed mounts). */
const FILE_BACKED_SINCE: readonly [number, number] = [6, 12];

export class ErofsMounter implements LayerMounter {
  readonly backing: 'loop' | 'file';

  constructor(backing: MountBacking, kernelRelease = release()) {
    const fileBacked = kernelAtLeast(kernelRelease, FILE_BACKED_SINCE);
    if (backing === 'file' && !fileBacked) {
      throw new FailedPreconditionError(
        `mounts.backing = "file" needs kernel ${FILE_BACKED_SINCE.join('.')} or later to mount EROFS images from files; this is ${kernelRelease}`,
        { hint: 'set mounts.backing to "loop" or "auto"' },
      );
    }
    this.backing = backing === 'auto' ? (fileBacked ? 'file' : 'loop') : backing;
  }

  async mount({ image }: MountableLayer, target: string): Promise<void> {
    if (this.backing === 'file') {
      await mount(image, target, 'erofs', ['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID']);
      return;
    }
    const loop = await attachLoop(image, { readOnly: true, autoclear: true });
    try {
      await mount(loop.device, target, 'erofs', ['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID']);
    } finally {
      // The mount holds the device now (or nothing does and autoclear frees it).
      await loop.close();
    }
  }

  async unmount(target: string): Promise<void> {
    try {
      await unmount(target, ['UMOUNT_NOFOLLOW']);
    } catch (err) {
      // Nothing may use a layer nobody references; if something still does
      // (a shell's cwd), detach it so the next mount of the layer starts clean.
      if (err instanceof SystemCallError && err.errno === 'EBUSY') {
        await unmount(target, ['MNT_DETACH', 'UMOUNT_NOFOLLOW']);
        return;
      }
      throw err;
    }
  }

  async mounts(): Promise<MountInfoEntry[]> {
    return readMountInfo();
  }

  async isMountOf(entry: MountInfoEntry, { image }: MountableLayer): Promise<boolean> {
    if (entry.fsType !== 'erofs') return false;
    if (entry.source === image) return true;
    if (!/^\/dev\/loop[0-9]+$/.test(entry.source)) return false;
    const [loop, file] = await Promise.all([loopStatus(entry.source), stat(image, { bigint: true })]);
    return loop.backingDevice === file.dev && loop.backingInode === file.ino;
  }
}

export function kernelAtLeast(kernelRelease: string, [major, minor]: readonly [number, number]): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (!m) return false;
  const [have, haveMinor] = [Number(m[1]), Number(m[2])];
  return have > major || (have === major && haveMinor >= minor);
}
