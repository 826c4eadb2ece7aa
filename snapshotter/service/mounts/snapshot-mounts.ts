/**
 * The mounts containerd gets for a snapshot, computed from paths alone (like
 * containerd's overlay `mounts()`): no I/O, so they can be tested, and Mounts
 * can answer without touching the disk. containerd 1.6 mounts each entry with
 * mount(2), so everything is ONE plain mount:
 *
 *   active, no parent     bind rw of its upper dir (overlay needs a lower dir)
 *   active, parents       overlay: upperdir + workdir over the layer mounts
 *   view, no parent       bind ro of its own empty dir
 *   view, one parent      bind ro of that layer's mount
 *   view, parents         overlay of the layer mounts only (read-only by nature)
 */
import type { Kind } from '../metadata/types.js';

export interface Mount {
  type: string;
  source: string;
  options: string[];
}

export interface SnapshotDirs {
  /** The snapshot's own directory: the upper dir of an active snapshot, an empty dir for a view. */
  upper: string;
  /** overlay's work dir, on the same filesystem as `upper`. */
  work: string;
}

/**
 * mount(2) copies one page of options. containerd 1.6 rewrites a longer
 * lowerdir list relative to a common parent (mount.All), but only from 3584
 * bytes on; layer mount points are kept short so that real images never get there.
 */
export const MOUNT_OPTIONS_MAX_BYTES = 4096;

/** `lowerDirs` are the parents' layer mounts, nearest parent first. */
export function snapshotMounts(kind: Exclude<Kind, 'committed'>, dirs: SnapshotDirs, lowerDirs: readonly string[]): Mount[] {
  if (lowerDirs.length === 0) {
    return [{ type: 'bind', source: dirs.upper, options: [kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
  }
  if (kind === 'view' && lowerDirs.length === 1) {
    return [{ type: 'bind', source: lowerDirs[0]!, options: ['ro', 'rbind'] }];
  }
  // index=off: with the index on, overlay records the lower layers' file
  // handles and refuses to mount the upper dir again once a layer was
  // remounted (a new loop device after a restart) and the handles changed.
  const options = ['index=off'];
  if (kind === 'active') options.push(`workdir=${dirs.work}`, `upperdir=${dirs.upper}`);
  options.push(`lowerdir=${lowerDirs.join(':')}`);
  return [{ type: 'overlay', source: 'overlay', options }];
}

/** Bytes of the option string mount(2) receives for `mount` (flags like ro/rbind are not part of it). */
export function mountDataBytes(mount: Mount): number {
  const data = mount.options.filter((o) => o.includes('='));
  return Buffer.byteLength(data.join(','));
}
