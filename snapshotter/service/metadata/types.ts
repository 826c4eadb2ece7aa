/**
 * The snapshot model, in containerd's terms (core/snapshots/snapshotter.go):
 * an active snapshot is writable and named by its `key`; committing it makes a
 * read-only snapshot called by its `name`; a view is a read-only snapshot of a
 * committed parent. Keys and names share one space per containerd namespace.
 */

export type Kind = 'view' | 'active' | 'committed';

export const KINDS: readonly Kind[] = ['view', 'active', 'committed'];

export type Labels = Record<string, string>;

/** What Stat, Update and List report about a snapshot. Times are ns since the epoch. */
export interface SnapshotInfo {
  /** Key of an active or view snapshot, name of a committed one. */
  name: string;
  /** Name of the committed parent; '' for a base snapshot. */
  parent: string;
  kind: Kind;
  created: bigint;
  updated: bigint;
  labels: Labels;
}

export interface Usage {
  /** Bytes on disk. */
  size: number;
  inodes: number;
}

/**
 * A snapshot as the file work sees it: the id names its directory, the
 * parent ids (nearest first) name the layers below it.
 */
export interface Snapshot {
  id: number;
  kind: Kind;
  parentIds: number[];
}

/** An active snapshot or a view: a snapshot that has mounts. */
export interface MountableSnapshot extends Snapshot {
  kind: Exclude<Kind, 'committed'>;
}

/** What Commit records about the layer it produced. */
export interface CommittedLayer {
  usage: Usage;
  /** dm-verity root hash of layer.erofs (hex). */
  rootHash: string;
}

/** A snapshot in a namespace, as reconcile and Cleanup see the whole store. */
export interface StoredSnapshot extends Snapshot {
  namespace: string;
  key: string;
}
