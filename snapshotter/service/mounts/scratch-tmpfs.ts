/** The tmpfs of unpack-scratch.ts, mounted by the kernel. */
import { mount, unmount } from '../../native/mount.js';
import type { ScratchMounter } from '../unpack-scratch.js';
import { readMountInfo } from './mountinfo.js';

export const tmpfsScratchMounter: ScratchMounter = {
  // Upper dirs hold files nobody executes or opens as devices; containerd only creates them.
  mountTmpfs: (dir, bytes) => mount('tmpfs', dir, 'tmpfs', ['MS_NOSUID', 'MS_NODEV', 'MS_NOEXEC'], `size=${bytes},mode=0700`),
  unmount: (dir) => unmount(dir, ['MNT_DETACH']),
  isMounted: async (dir) => (await readMountInfo()).some((m) => m.mountPoint === dir),
};
