/**
 * The snapshot metadata store: containerd's `snapshots/storage` functions over
 * one database. Every method is synchronous and atomic; `transaction()` joins
 * several of them, and file work that must happen atomically with a change
 * (renaming a `new-*` directory into place) runs inside it. Errors are
 * containerd's: NotFoundError, AlreadyExistsError, FailedPreconditionError,
 * InvalidArgumentError, each naming the namespace and key.
 */
import type { CommittedLayer, Kind, Labels, LayerOrigin, LayerRecord, MountableSnapshot, Snapshot, SnapshotInfo, StoredSnapshot, Usage } from './types.js';

export interface MetadataStore {
  /** Runs `fn` as one write transaction; store calls inside it join it. `fn` must not be async. */
  transaction<T>(fn: () => T): T;

  /**
   * A new active or view snapshot on a committed `parent` ('' for none).
   * `options.mountpoints`: an active snapshot without upper dir, with that
   * committed layer (the mountpoints layer) above its parents.
   */
  createSnapshot(
    ns: string,
    kind: Exclude<Kind, 'committed'>,
    key: string,
    parent: string,
    labels: Labels,
    options?: { mountpoints?: number },
  ): MountableSnapshot;

  /**
   * A committed snapshot straight from a layer built elsewhere (the pull fast
   * path, the mountpoints layer): no active snapshot before it.
   */
  insertCommitted(ns: string, name: string, parent: string, layer: CommittedLayer, labels: Labels): Snapshot;

  /** The name of a committed snapshot on `parent` carrying label `name`=`value`, if there is one. */
  findCommitted(ns: string, parent: string, label: { name: string; value: string }): string | undefined;

  /** What is recorded about where committed snapshot `name` came from. */
  layerOrigin(ns: string, name: string): LayerOrigin;

  /**
   * Committed snapshot `parent` and its ancestors, nearest first: the layers a
   * new child of it stands on. Throws what createSnapshot would for this parent.
   */
  layerChain(ns: string, parent: string): number[];

  /** An active or view snapshot with its parent chain (what Mounts needs). */
  getSnapshot(ns: string, key: string): MountableSnapshot;

  getInfo(ns: string, key: string): { id: number; info: SnapshotInfo; usage: Usage };

  /**
   * Changes labels. `fieldpaths`: "labels" replaces all, "labels.<k>" sets or
   * (with an empty or missing value) deletes one; none means "labels". Any
   * other path is an InvalidArgumentError: the rest of a snapshot is immutable.
   */
  updateInfo(ns: string, info: { name: string; labels: Labels }, fieldpaths: readonly string[]): SnapshotInfo;

  /** Snapshots of the namespace matching any of `filters` (containerd filter syntax), in key order. */
  walk(ns: string, filters: readonly string[]): SnapshotInfo[];

  /**
   * Turns active `key` into committed `name` (same id, parent kept, labels
   * replaced by `labels`, created = updated = now) and records its layer.
   */
  commitActive(ns: string, key: string, name: string, layer: CommittedLayer, labels: Labels): Snapshot;

  /** Throws what commitActive would, changing nothing; returns the active snapshot. Check before slow work. */
  checkCommit(ns: string, key: string, name: string): Snapshot;

  /** Deletes a snapshot without children (nor active snapshots using it as their mountpoints layer); returns what the file work needs to clean up. */
  remove(ns: string, key: string): Snapshot;

  /** Every snapshot of every namespace. */
  listAll(): StoredSnapshot[];

  /** The committed snapshot with this id (its layer), or undefined if there is none. */
  committedLayer(id: number): LayerRecord | undefined;

  close(): void;
}
