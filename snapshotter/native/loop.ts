/**
 * Loop devices: an image file as a read-only block device, for kernels that
 * cannot mount EROFS from a file and for dm-verity's data and hash devices.
 */
import { close } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout } from 'node:timers/promises';
import { promisify } from 'node:util';
import { isNotFound, SystemCallError } from '../core/errors.js';
import { callNative, checkString, type Explain } from './call.js';

/** LO_FLAGS_* from <linux/loop.h>. */
export const LoopFlags = {
  LO_FLAGS_READ_ONLY: 1,
  LO_FLAGS_AUTOCLEAR: 4,
  LO_FLAGS_PARTSCAN: 8,
  LO_FLAGS_DIRECT_IO: 16,
} as const;

export interface AttachLoopOptions {
  /** Default true: the kernel refuses writes to the device. */
  readOnly?: boolean;
  /** Default true: the kernel frees the device when its last user (the mount, the dm table) lets go. */
  autoclear?: boolean;
  /** Read the backing file with O_DIRECT, skipping a second copy in the page cache. */
  directIo?: boolean;
}

/**
 * A bound loop device and the descriptor that holds it open. With autoclear
 * the device is freed on its last close, so close() only once the mount or
 * the dm table holds the device; closing before would free it under you.
 * Close in every case, also when the mount fails: that frees the device.
 */
export interface AttachedLoop {
  readonly device: string;
  readonly number: number;
  close(): Promise<void>;
}

export interface LoopStatus {
  device: string;
  number: number;
  /**
   * Full path of the backing file from sysfs (" (deleted)" appended once it is
   * unlinked), for people. Programs match on backingDevice and backingInode.
   */
  backingFile: string;
  /** The kernel's lo_file_name: what the attach wrote, cut to 63 bytes. */
  fileName: string;
  /** st_dev and st_ino of the backing file: compare with fs.stat(file, { bigint: true }). */
  backingDevice: bigint;
  backingInode: bigint;
  offset: bigint;
  sizeLimit: bigint;
  flags: { readOnly: boolean; autoclear: boolean; partscan: boolean; directIo: boolean };
}

/**
 * Another process may take the free device between LOOP_CTL_GET_FREE and the
 * attach (EBUSY). Until its attach completes the kernel still offers the same
 * device as free, so wait a little longer before each new try.
 */
const ATTACH_ATTEMPTS = 8;
const ATTACH_BACKOFF_MS = 5;

const closeFd = promisify(close);

/**
 * Binds `file` to a free loop device with LOOP_CONFIGURE (one ioctl), or with
 * LOOP_SET_FD + LOOP_SET_STATUS64 on kernels older than 5.8, which answer
 * LOOP_CONFIGURE with ENOTTY or EINVAL.
 */
export async function attachLoop(file: string, options: AttachLoopOptions = {}): Promise<AttachedLoop> {
  checkString(file, 'loop backing file');
  const { readOnly = true, autoclear = true, directIo = false } = options;
  const loFlags =
    (readOnly ? LoopFlags.LO_FLAGS_READ_ONLY : 0) |
    (autoclear ? LoopFlags.LO_FLAGS_AUTOCLEAR : 0) |
    (directIo ? LoopFlags.LO_FLAGS_DIRECT_IO : 0);
  for (let attempt = 1; ; attempt++) {
    const number = await callNative((native) => native.loopGetFree(), explainLoop);
    const device = `/dev/loop${number}`;
    try {
      const fd = await bind(device, file, loFlags);
      return openLoop(device, number, fd);
    } catch (err) {
      if (!(err instanceof SystemCallError && err.errno === 'EBUSY' && attempt < ATTACH_ATTEMPTS)) throw err;
    }
    await setTimeout(ATTACH_BACKOFF_MS * attempt);
  }
}

async function bind(device: string, file: string, loFlags: number): Promise<number> {
  try {
    return await callNative((native) => native.loopConfigure(device, file, loFlags), explainLoop);
  } catch (err) {
    const unsupported = err instanceof SystemCallError && err.syscall === 'LOOP_CONFIGURE' && (err.errno === 'ENOTTY' || err.errno === 'EINVAL');
    if (!unsupported) throw err;
    return callNative((native) => native.loopSetFd(device, file, loFlags), explainLoop);
  }
}

function openLoop(device: string, number: number, fd: number): AttachedLoop {
  let open = true;
  return {
    device,
    number,
    // Idempotent: closing the same number twice could close someone else's descriptor.
    async close() {
      if (!open) return;
      open = false;
      await closeFd(fd);
    },
  };
}

/** LOOP_CLR_FD. On a device still in use the kernel defers it to the last close (autoclear). */
export async function detachLoop(device: string): Promise<void> {
  checkString(device, 'loop device');
  await callNative((native) => native.loopClearFd(device), explainLoop);
}

/** LOOP_GET_STATUS64 plus the full backing path from sysfs. ENXIO when the device is not bound. */
export async function loopStatus(device: string): Promise<LoopStatus> {
  checkString(device, 'loop device');
  const raw = await callNative((native) => native.loopGetStatus(device), explainLoop);
  return {
    device,
    number: raw.number,
    backingFile: (await sysfsBackingFile(raw.number)) ?? raw.fileName,
    fileName: raw.fileName,
    backingDevice: raw.backingDevice,
    backingInode: raw.backingInode,
    offset: raw.offset,
    sizeLimit: raw.sizeLimit,
    flags: {
      readOnly: (raw.flags & LoopFlags.LO_FLAGS_READ_ONLY) !== 0,
      autoclear: (raw.flags & LoopFlags.LO_FLAGS_AUTOCLEAR) !== 0,
      partscan: (raw.flags & LoopFlags.LO_FLAGS_PARTSCAN) !== 0,
      directIo: (raw.flags & LoopFlags.LO_FLAGS_DIRECT_IO) !== 0,
    },
  };
}

/**
 * lo_file_name holds 63 bytes; sysfs has the whole path. Without sysfs, or
 * when the device was detached since the ioctl (ENODEV), the kernel's field
 * has to do: a status is only ever a snapshot.
 */
async function sysfsBackingFile(number: number): Promise<string | undefined> {
  try {
    return (await readFile(`/sys/block/loop${number}/loop/backing_file`, 'utf8')).replace(/\n$/, '');
  } catch (err) {
    if (isNotFound(err) || (err as { code?: unknown }).code === 'ENODEV') return undefined;
    throw err;
  }
}

const explainLoop: Explain = (failure) => {
  if (failure.syscall === 'open' && failure.path === '/dev/loop-control' && failure.code === 'ENOENT') {
    return {
      message: 'loop devices are not available: /dev/loop-control does not exist',
      hint: 'load the loop module (modprobe loop) and make sure devtmpfs is mounted on /dev',
    };
  }
  if (failure.syscall === 'LOOP_GET_STATUS64' && failure.code === 'ENXIO') {
    return { message: 'no file is attached to this loop device' };
  }
  if (failure.syscall === 'LOOP_CONFIGURE' && failure.code === 'EBUSY') {
    return { message: 'the loop device is already bound (another process took it first)' };
  }
  return undefined;
};
