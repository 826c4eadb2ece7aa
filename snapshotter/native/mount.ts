/**
 * mount(2) and umount2(2) with the kernel's flag names. The option strings
 * themselves (overlay lowerdir lists and so on) are built by the callers.
 */
import { Buffer } from 'node:buffer';
import { InvalidArgumentError, SystemCallError } from '../core/errors.js';
import { callNative, checkFlags, checkString, type Explain } from './call.js';

/** MS_* from <linux/mount.h>. */
export const MountFlags = {
  MS_RDONLY: 1,
  MS_NOSUID: 2,
  MS_NODEV: 4,
  MS_NOEXEC: 8,
  MS_SYNCHRONOUS: 16,
  MS_REMOUNT: 32,
  MS_MANDLOCK: 64,
  MS_DIRSYNC: 128,
  MS_NOSYMFOLLOW: 256,
  MS_NOATIME: 1024,
  MS_NODIRATIME: 2048,
  MS_BIND: 4096,
  MS_MOVE: 8192,
  MS_REC: 16384,
  MS_SILENT: 32768,
  MS_UNBINDABLE: 1 << 17,
  MS_PRIVATE: 1 << 18,
  MS_SLAVE: 1 << 19,
  MS_SHARED: 1 << 20,
  MS_RELATIME: 1 << 21,
  MS_STRICTATIME: 1 << 24,
  MS_LAZYTIME: 1 << 25,
} as const;
export type MountFlag = keyof typeof MountFlags;

/** MNT_* and UMOUNT_NOFOLLOW from <sys/mount.h>. */
export const UnmountFlags = {
  MNT_FORCE: 1,
  MNT_DETACH: 2,
  MNT_EXPIRE: 4,
  UMOUNT_NOFOLLOW: 8,
} as const;
export type UnmountFlag = keyof typeof UnmountFlags;

/**
 * mount(2) copies one page of `data` and cuts it there without a word, so a
 * longer overlay lowerdir list would lose its last layers or name another
 * directory. 4096 is the smallest page size Linux has, so one limit for all.
 */
export const MOUNT_DATA_MAX_BYTES = 4096 - 1;

/** mount(2). `data` is the filesystem's option string (e.g. overlay's `lowerdir=a:b`). */
export async function mount(
  source: string,
  target: string,
  fstype: string,
  flags: readonly MountFlag[] | number = 0,
  data?: string,
): Promise<void> {
  checkString(source, 'mount source');
  checkString(target, 'mount target');
  checkString(fstype, 'filesystem type');
  const value = checkFlags(flags, MountFlags, 'mount flag');
  if (data !== undefined) checkMountData(data, target);
  await callNative((native) => native.mount(source, target, fstype, value, data ?? null), explainMount);
}

/** umount2(2). */
export async function unmount(target: string, flags: readonly UnmountFlag[] | number = 0): Promise<void> {
  checkString(target, 'unmount target');
  const value = checkFlags(flags, UnmountFlags, 'unmount flag');
  await callNative((native) => native.umount2(target, value), explainMount);
}

function checkMountData(data: string, target: string): void {
  if (typeof data !== 'string' || data.includes('\0')) {
    throw new InvalidArgumentError(`mount data must be a string without NUL bytes, got ${JSON.stringify(data)}`);
  }
  const bytes = Buffer.byteLength(data);
  if (bytes > MOUNT_DATA_MAX_BYTES) {
    throw new SystemCallError(
      'EINVAL',
      'mount',
      target,
      `mount data is ${bytes} bytes, but the kernel reads at most ${MOUNT_DATA_MAX_BYTES} and silently drops the rest`,
      { hint: 'use shorter directory paths in the options (e.g. short per-layer directory names)' },
    );
  }
}

const explainMount: Explain = (failure) => {
  if (failure.syscall === 'mount' && failure.code === 'ENOENT') {
    return { hint: 'the mount target, the source, or a directory named in the options does not exist' };
  }
  if (failure.syscall === 'mount' && failure.code === 'ENODEV') {
    return { hint: 'the kernel does not know this filesystem type; load its module (e.g. modprobe erofs)' };
  }
  if (failure.syscall === 'umount2' && failure.code === 'EINVAL') {
    return { message: 'not a mount point (or bad unmount flags)' };
  }
  if (failure.syscall === 'umount2' && failure.code === 'EBUSY') {
    return { hint: 'something still uses the mount; find it with fuser -m, or unmount with MNT_DETACH' };
  }
  return undefined;
};
