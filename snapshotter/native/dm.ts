/**
 * Device-mapper through its control device: create a device, load its table,
 * resume it, read its status, remove it. dm-verity devices are made with
 * these; the table lines come from layer/verity, the names from the caller.
 */
import { Buffer } from 'node:buffer';
import { stat } from 'node:fs/promises';
import { FailedPreconditionError, InvalidArgumentError, isNotFound } from '../core/errors.js';
import { callNative, checkString, type Explain } from './call.js';
import type { RawDmInfo, RawDmTarget } from './loader.js';

/** DM_* flags from <linux/dm-ioctl.h> that the facade sends or reads. */
export const DmFlags = {
  DM_READONLY_FLAG: 1 << 0,
  DM_SUSPEND_FLAG: 1 << 1,
  DM_STATUS_TABLE_FLAG: 1 << 4,
  DM_ACTIVE_PRESENT_FLAG: 1 << 5,
  DM_INACTIVE_PRESENT_FLAG: 1 << 6,
  DM_DEFERRED_REMOVE: 1 << 17,
} as const;

/** Field sizes of struct dm_ioctl and dm_target_spec, less the terminating NUL. */
export const DM_NAME_MAX_BYTES = 127;
export const DM_UUID_MAX_BYTES = 128;
export const DM_TARGET_TYPE_MAX_BYTES = 15;

/** One table line: `start length type params`, in 512-byte sectors. */
export type DmTarget = RawDmTarget;

export interface DmDevice {
  name: string;
  major: number;
  minor: number;
  /** The device number as fs.stat(node, { bigint: true }).rdev reports it. */
  dev: bigint;
}

export interface DmInfo extends DmDevice {
  uuid: string;
  openCount: number;
  eventNr: number;
  targetCount: number;
  readOnly: boolean;
  suspended: boolean;
  /** A live table is loaded (the device serves I/O once resumed). */
  activeTable: boolean;
  /** A table is loaded but waits for the next resume. */
  inactiveTable: boolean;
  /** DM_DEV_REMOVE with deferred was asked and waits for the last close. */
  deferredRemove: boolean;
}

/** DM_VERSION: the kernel's ioctl interface version, [4, minor, patch]. */
export async function dmVersion(): Promise<[number, number, number]> {
  return callNative((native) => native.dmVersion(), explainDm);
}

/** DM_DEV_CREATE: a device with no table; read-only-ness comes with the table (dmLoadTable). */
export async function dmCreate(name: string, options: { uuid?: string } = {}): Promise<DmInfo> {
  checkName(name);
  const uuid = options.uuid ?? '';
  if (uuid !== '') checkField(uuid, 'dm device uuid', DM_UUID_MAX_BYTES);
  return toInfo(await callNative((native) => native.dmDevCreate(name, uuid, 0), explainDm));
}

/**
 * DM_TABLE_LOAD into the inactive slot; dmResume makes it live. dm-verity
 * refuses a table that is not read-only.
 */
export async function dmLoadTable(name: string, targets: readonly DmTarget[], options: { readOnly: boolean }): Promise<DmInfo> {
  checkName(name);
  if (!Array.isArray(targets) || targets.length === 0) {
    throw new InvalidArgumentError(`the table for dm device ${JSON.stringify(name)} needs at least one target`);
  }
  const checked = targets.map(checkTarget);
  const flags = options.readOnly ? DmFlags.DM_READONLY_FLAG : 0;
  return toInfo(await callNative((native) => native.dmTableLoad(name, checked, flags), explainDm));
}

/** DM_DEV_SUSPEND without DM_SUSPEND_FLAG: swaps in the loaded table and lets I/O through. */
export async function dmResume(name: string): Promise<DmInfo> {
  checkName(name);
  return toInfo(await callNative((native) => native.dmDevSuspend(name, 0), explainDm));
}

/** DM_DEV_SUSPEND: holds new I/O and waits for I/O in flight. */
export async function dmSuspend(name: string): Promise<DmInfo> {
  checkName(name);
  return toInfo(await callNative((native) => native.dmDevSuspend(name, DmFlags.DM_SUSPEND_FLAG), explainDm));
}

/**
 * DM_DEV_REMOVE. A device that is open fails with EBUSY, or with `deferred`
 * is removed on its last close; `deferred: true` in the answer means that
 * removal is still pending.
 */
export async function dmRemove(name: string, options: { deferred?: boolean } = {}): Promise<{ deferred: boolean }> {
  checkName(name);
  const flags = options.deferred ? DmFlags.DM_DEFERRED_REMOVE : 0;
  const info = await callNative((native) => native.dmDevRemove(name, flags), explainDm);
  return { deferred: (info.flags & DmFlags.DM_DEFERRED_REMOVE) !== 0 };
}

/** DM_TABLE_STATUS: each live target's status; for verity `params` starts with V (verified) or C (corruption seen). */
export async function dmStatus(name: string): Promise<DmTarget[]> {
  checkName(name);
  return (await callNative((native) => native.dmTableStatus(name, 0), explainDm)).targets;
}

/** DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG: the live table as the kernel prints it (devices as major:minor). */
export async function dmTable(name: string): Promise<DmTarget[]> {
  checkName(name);
  return (await callNative((native) => native.dmTableStatus(name, DmFlags.DM_STATUS_TABLE_FLAG), explainDm)).targets;
}

/** DM_DEV_STATUS. A missing device is a SystemCallError with errno ENXIO. */
export async function dmInfo(name: string): Promise<DmInfo> {
  checkName(name);
  return toInfo(await callNative((native) => native.dmDevStatus(name, 0), explainDm));
}

/** DM_LIST_DEVICES: every device-mapper device on the machine, whoever made it. */
export async function dmList(): Promise<DmDevice[]> {
  return callNative((native) => native.dmListDevices(), explainDm);
}

/**
 * The block device node to open or mount: /dev/dm-<minor>. devtmpfs creates
 * it in the kernel as soon as the device has a table, with no udev, while
 * /dev/mapper/<name> is a link that only udev makes (and the VM, the initrd
 * and minimal nodes have no udev). The node is checked to be that very
 * device, so a stale or foreign node is never mounted.
 */
export async function dmDeviceNode(device: DmDevice): Promise<string> {
  const path = `/dev/dm-${device.minor}`;
  try {
    const node = await stat(path, { bigint: true });
    if (node.isBlockDevice() && node.rdev === device.dev) return path;
    throw new FailedPreconditionError(`${path} is not dm device ${JSON.stringify(device.name)} (${device.major}:${device.minor})`, {
      hint: 'mount devtmpfs on /dev so the kernel keeps device nodes current',
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new FailedPreconditionError(`no device node ${path} for dm device ${JSON.stringify(device.name)}`, {
      hint: 'mount devtmpfs on /dev (the kernel creates dm-N there once the device has a table)',
      cause: err,
    });
  }
}

function toInfo(raw: RawDmInfo): DmInfo {
  return {
    name: raw.name,
    uuid: raw.uuid,
    major: raw.major,
    minor: raw.minor,
    dev: raw.dev,
    openCount: raw.openCount,
    eventNr: raw.eventNr,
    targetCount: raw.targetCount,
    readOnly: (raw.flags & DmFlags.DM_READONLY_FLAG) !== 0,
    suspended: (raw.flags & DmFlags.DM_SUSPEND_FLAG) !== 0,
    activeTable: (raw.flags & DmFlags.DM_ACTIVE_PRESENT_FLAG) !== 0,
    inactiveTable: (raw.flags & DmFlags.DM_INACTIVE_PRESENT_FLAG) !== 0,
    deferredRemove: (raw.flags & DmFlags.DM_DEFERRED_REMOVE) !== 0,
  };
}

function checkField(value: string, what: string, maxBytes: number): void {
  checkString(value, what);
  if (Buffer.byteLength(value) > maxBytes) {
    throw new InvalidArgumentError(`${what} ${JSON.stringify(value)} is longer than the kernel's ${maxBytes} bytes`);
  }
}

/** The kernel refuses names with '/' and the names "." and ".." (they would be /dev/mapper paths). */
function checkName(name: string): void {
  checkField(name, 'dm device name', DM_NAME_MAX_BYTES);
  if (name.includes('/') || name === '.' || name === '..') {
    throw new InvalidArgumentError(`dm device name ${JSON.stringify(name)} must not contain "/" nor be "." or ".."`);
  }
}

function checkTarget(target: DmTarget, index: number): DmTarget {
  const what = `dm target ${index}`;
  for (const key of ['start', 'length'] as const) {
    const value = target?.[key];
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`${what}: ${key} must be a non-negative integer (sectors), got ${String(value)}`);
    }
  }
  if (target.length === 0) throw new InvalidArgumentError(`${what}: length must not be 0`);
  checkField(target.type, `${what} type`, DM_TARGET_TYPE_MAX_BYTES);
  if (typeof target.params !== 'string' || target.params.includes('\0')) {
    throw new InvalidArgumentError(`${what}: params must be a string without NUL bytes`);
  }
  return { start: target.start, length: target.length, type: target.type, params: target.params };
}

const explainDm: Explain = (failure) => {
  if (failure.syscall === 'open' && failure.path === '/dev/mapper/control' && failure.code === 'ENOENT') {
    return {
      message: 'device-mapper is not available in this kernel: /dev/mapper/control does not exist',
      hint:
        'load the modules (modprobe dm_verity) or use a kernel with CONFIG_BLK_DEV_DM and CONFIG_DM_VERITY; ' +
        'without devtmpfs on /dev, create the node with mknod /dev/mapper/control c 10 236',
    };
  }
  if (failure.code === 'ENXIO' && failure.syscall.startsWith('DM_')) {
    return { message: 'no device-mapper device has this name' };
  }
  if (failure.syscall === 'DM_DEV_CREATE' && failure.code === 'EBUSY') {
    return { message: 'a device-mapper device with this name or uuid already exists' };
  }
  if (failure.syscall === 'DM_TABLE_LOAD' && failure.code === 'EINVAL') {
    return { hint: 'the kernel log (dmesg) names the argument the target refused; for verity, check that the table is read-only' };
  }
  if (failure.syscall === 'DM_DEV_REMOVE' && failure.code === 'EBUSY') {
    return { hint: 'the device is still open (mounted, or under another table); unmount it first, or remove it deferred' };
  }
  return undefined;
};
