/**
 * The typed facade over the native addon. Importing it loads nothing: the
 * addon is loaded on the first call (loader.ts), so only daemons that mount
 * need a built addon. Every failure is a SystemCallError (errno name, call,
 * path) or a FailedPreconditionError saying why the addon cannot be used.
 */
export { attachLoop, detachLoop, loopStatus, LoopFlags } from './loop.js';
export type { AttachLoopOptions, AttachedLoop, LoopStatus } from './loop.js';
export { mount, unmount, MountFlags, UnmountFlags, MOUNT_DATA_MAX_BYTES } from './mount.js';
export type { MountFlag, UnmountFlag } from './mount.js';
export {
  dmVersion,
  dmCreate,
  dmLoadTable,
  dmResume,
  dmSuspend,
  dmRemove,
  dmStatus,
  dmTable,
  dmInfo,
  dmList,
  dmDeviceNode,
  DmFlags,
  DM_NAME_MAX_BYTES,
  DM_UUID_MAX_BYTES,
  DM_TARGET_TYPE_MAX_BYTES,
} from './dm.js';
export type { DmTarget, DmDevice, DmInfo } from './dm.js';
export { listXattrs, getXattr } from './xattr.js';
export { loadNative, addonPath } from './loader.js';
