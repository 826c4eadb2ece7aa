/**
 * Paths under the snapshotter's root, all computed from ids:
 *
 *   <root>/metadata.db              SQLite metadata (WAL: -wal, -shm beside it)
 *   <root>/daemon.lock              held by the running daemon (root-lock.ts)
 *   <root>/snapshots/<id>/fs        active: overlay upper dir; view: empty dir
 *   <root>/snapshots/<id>/work      active: overlay work dir
 *   <root>/snapshots/<id>/layer.erofs, layer.verity    committed: the layer
 *   <root>/snapshots/new-*, rm-*    being created / removed; Cleanup drops them
 *   <root>/unpack/<id>/fs, work     tmpfs: upper and work dir of an unpack whose layer is built from its blob
 *   <mounts.dir>/<id>               committed layer mounted read-only (default <root>/m)
 */
import { renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { syncDirectory } from '../core/atomic-file.js';
import { SNAPSHOTS_DIR } from '../core/config.js';
import { LAYER_HASH_TREE, LAYER_IMAGE } from './layers/store.js';

export class RootLayout {
  readonly root: string;
  readonly snapshots: string;
  readonly database: string;
  readonly lock: string;
  /** The tmpfs of unpack-scratch.ts. */
  readonly unpackScratch: string;

  constructor(root: string) {
    this.root = root;
    this.snapshots = join(root, SNAPSHOTS_DIR);
    this.database = join(root, 'metadata.db');
    this.lock = join(root, 'daemon.lock');
    this.unpackScratch = join(root, 'unpack');
  }

  snapshot(id: number): string {
    return join(this.snapshots, String(id));
  }

  upper(id: number): string {
    return join(this.snapshot(id), 'fs');
  }

  work(id: number): string {
    return join(this.snapshot(id), 'work');
  }

  image(id: number): string {
    return join(this.snapshot(id), LAYER_IMAGE);
  }

  hashTree(id: number): string {
    return join(this.snapshot(id), LAYER_HASH_TREE);
  }
}

/** Prefixes of directories in flight under `snapshots/`. */
export const NEW_PREFIX = 'new-';
export const REMOVING_PREFIX = 'rm-';

/**
 * Renames a snapshot directory built under a temporary name (`new-*`) to its
 * id, inside the metadata transaction that creates the snapshot, and makes
 * the rename durable before that transaction commits: a committed row must
 * never name a directory that a power loss could take back to `new-*`
 * (which start-up Cleanup deletes).
 */
export function publishDirectory(temp: string, final: string): void {
  renameSync(temp, final);
  syncDirectory(dirname(final));
}
