/** The tmpfs of unpack-scratch.ts, mounted by the kernel. */
import { readFile } from 'node:fs/promises';
import { mount, unmount } from '../../native/mount.js';
import type { ScratchMounter } from '../unpack-scratch.js';
import { parseMountInfo } from './mountinfo.js';

export const tmpfsScratchMounter: ScratchMounter = {
  // Upper dirs hold files nobody executes or opens as devices; containerd only creates them.
  mountTmpfs: (dir, bytes) => mount('tmpfs', dir, 'tmpfs', ['MS_NOSUID', 'MS_NODEV', 'MS_NOEXEC'], `size=${bytes},mode=0700`),
  unmount: (dir) => unmount(dir, ['MNT_DETACH']),
  isMounted: async (dir) => parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).some((m) => m.mountPoint === dir),
};
