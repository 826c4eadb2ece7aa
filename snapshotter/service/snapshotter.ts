/**
 * containerd's snapshotter semantics over EROFS layers, shaped like
 * containerd's overlay snapshotter: each method is one short synchronous
 * metadata transaction with the file work around it. Slow work (mounting
 * layers, building a layer) happens before the transaction; a new directory
 * is made as `new-*` and renamed to its id inside it; removals happen after
 * it, so a crash leaves at worst directories Cleanup drops.
 *
 * Committed snapshots are layer files, never extracted trees. Active
 * snapshots and views stand on their parents' layers, each mounted once by
 * the MountManager and referenced by every snapshot above it.
 */
import { randomUUID } from 'node:crypto';
import { chmod, lchown, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { isNotFound } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { TEMP_MARKER } from '../core/atomic-file.js';
import { diskUsage } from './disk-usage.js';
import { KeyedLock } from './keyed-lock.js';
import type { LayerStore } from './layers/store.js';
import { NEW_PREFIX, REMOVING_PREFIX, type RootLayout } from './layout.js';
import type { MetadataStore } from './metadata/store.js';
import type { Kind, Labels, MountableSnapshot, SnapshotInfo, Usage } from './metadata/types.js';
import type { MountManager } from './mounts/manager.js';
import { layerReferences } from './mounts/reconcile.js';
import { snapshotMounts, mountDataBytes, MOUNT_OPTIONS_MAX_BYTES, type Mount } from './mounts/snapshot-mounts.js';

export interface SnapshotterOptions {
  layout: RootLayout;
  store: MetadataStore;
  layers: LayerStore;
  mounts: MountManager;
  logger: Logger;
}

export class Snapshotter {
  private readonly layout: RootLayout;
  private readonly store: MetadataStore;
  private readonly layers: LayerStore;
  private readonly mountManager: MountManager;
  private readonly logger: Logger;
  private readonly keys = new KeyedLock();
  /** Directories under snapshots/ that requests are working in; Cleanup leaves them alone. */
  private readonly busy = new Set<string>();

  constructor(options: SnapshotterOptions) {
    this.layout = options.layout;
    this.store = options.store;
    this.layers = options.layers;
    this.mountManager = options.mounts;
    this.logger = options.logger;
  }

  /** Start-up reconcile: drop directories the metadata does not know, then bring the layer mounts in line. */
  async start(): Promise<void> {
    await mkdir(this.layout.snapshots, { recursive: true, mode: 0o700 });
    await mkdir(this.mountManager.dir, { recursive: true, mode: 0o755 });
    await this.removeUnknownDirectories();
    await this.mountManager.restore(layerReferences(this.store.listAll()));
  }

  prepare(ns: string, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    return this.create(ns, 'active', key, parent, labels);
  }

  view(ns: string, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    return this.create(ns, 'view', key, parent, labels);
  }

  mounts(ns: string, key: string): Mount[] {
    return this.mountsOf(this.store.getSnapshot(ns, key));
  }

  async commit(ns: string, name: string, key: string, labels: Labels): Promise<void> {
    const log = this.logger.child({ ns, key, name });
    await this.keys.run(lockKey(ns, key), async () => {
      const active = this.store.checkCommit(ns, key, name);
      const dir = this.layout.snapshot(active.id);
      this.busy.add(dir);
      try {
        const layer = await this.layers.commitDirectory(this.layout.upper(active.id), dir);
        try {
          this.store.commitActive(ns, key, name, layer, labels);
        } catch (err) {
          await this.layers.discard(dir);
          throw err;
        }
        log.info({ rootHash: layer.rootHash, bytes: layer.usage.size }, 'snapshot committed');
        // The upper dir is now a layer file; nothing stays extracted.
        await this.removeQuietly([this.layout.upper(active.id), this.layout.work(active.id)], log);
      } finally {
        this.busy.delete(dir);
      }
      await this.mountManager.release(active.parentIds);
    });
  }

  async remove(ns: string, key: string): Promise<void> {
    const log = this.logger.child({ ns, key });
    await this.keys.run(lockKey(ns, key), async () => {
      const trash = join(this.layout.snapshots, `${REMOVING_PREFIX}${randomUUID()}`);
      this.busy.add(trash);
      try {
        const removed = this.store.transaction(() => {
          const s = this.store.remove(ns, key);
          renameIfPresent(this.layout.snapshot(s.id), trash);
          return s;
        });
        log.info({ kind: removed.kind }, 'snapshot removed');
        await this.removeQuietly([trash], log);
        if (removed.kind !== 'committed') await this.mountManager.release(removed.parentIds);
      } finally {
        this.busy.delete(trash);
      }
    });
  }

  stat(ns: string, key: string): SnapshotInfo {
    return this.store.getInfo(ns, key).info;
  }

  update(ns: string, info: { name: string; labels: Labels }, fieldpaths: readonly string[]): SnapshotInfo {
    return this.store.updateInfo(ns, info, fieldpaths);
  }

  list(ns: string, filters: readonly string[]): SnapshotInfo[] {
    return this.store.walk(ns, filters);
  }

  /** Active snapshots: what their upper dir holds now. Others: what was recorded (views hold nothing). */
  async usage(ns: string, key: string): Promise<Usage> {
    const { id, info, usage } = this.store.getInfo(ns, key);
    return info.kind === 'active' ? diskUsage(this.layout.upper(id)) : usage;
  }

  /** Drops directories and mounts nothing refers to any more. */
  async cleanup(): Promise<void> {
    await this.removeUnknownDirectories();
    await this.mountManager.sweep();
  }

  private async create(ns: string, kind: Exclude<Kind, 'committed'>, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    const log = this.logger.child({ ns, key, parent });
    // Fail fast on a bad parent before mounting anything; the transaction checks again.
    const chain = parent === '' ? [] : this.store.layerChain(ns, parent);
    const temp = await mkdtemp(join(this.layout.snapshots, NEW_PREFIX));
    this.busy.add(temp);
    let acquired = false;
    let created: string | undefined;
    let snapshot: MountableSnapshot;
    try {
      await mkdir(join(temp, 'fs'), { mode: 0o755 });
      await chmod(join(temp, 'fs'), 0o755);
      if (kind === 'active') await mkdir(join(temp, 'work'), { mode: 0o711 });
      await this.mountManager.acquire(chain);
      acquired = true;
      if (chain.length > 0) {
        // The new root belongs to whoever owns the parent's root, as in containerd's overlay.
        const top = await stat(this.mountManager.mountPoint(chain[0]!));
        await lchown(join(temp, 'fs'), top.uid, top.gid);
      }
      snapshot = this.store.transaction(() => {
        const s = this.store.createSnapshot(ns, kind, key, parent, labels);
        created = this.layout.snapshot(s.id);
        renameSync(temp, created);
        return s;
      });
    } catch (err) {
      // A rename that happened inside a transaction that then failed leaves the directory under its id.
      await this.removeQuietly(created ? [temp, created] : [temp], log);
      if (acquired) await this.mountManager.release(chain);
      throw err;
    } finally {
      this.busy.delete(temp);
    }
    log.info({ kind, layers: chain.length }, 'snapshot created');
    return this.mountsOf(snapshot, log);
  }

  private mountsOf(s: MountableSnapshot, log: Logger = this.logger): Mount[] {
    const mounts = snapshotMounts(
      s.kind,
      { upper: this.layout.upper(s.id), work: this.layout.work(s.id) },
      s.parentIds.map((id) => this.mountManager.mountPoint(id)),
    );
    const bytes = mountDataBytes(mounts[0]!);
    if (bytes > MOUNT_OPTIONS_MAX_BYTES - 512) {
      // containerd's mount.All rewrites the lowerdir list relative to the
      // mount dir from here on; a client that does not would fail past a page.
      const level = bytes >= MOUNT_OPTIONS_MAX_BYTES ? 'warn' : 'debug';
      log[level]({ layers: s.parentIds.length, bytes }, 'overlay options need containerd to shorten the lowerdir list');
    }
    return mounts;
  }

  /**
   * Everything under snapshots/ that is not a known snapshot's directory goes
   * (new-* and rm-* leftovers, directories of rolled-back transactions), as do
   * leftovers inside known ones: upper dirs of committed snapshots, unfinished
   * temporary layer files.
   */
  private async removeUnknownDirectories(): Promise<void> {
    // Directory names first, metadata second: a snapshot created in between
    // is either not listed yet or already known, never mistaken for garbage.
    const names = await readdir(this.layout.snapshots);
    const known = new Map(this.store.listAll().map((s) => [String(s.id), s.kind]));
    for (const name of names) {
      const path = join(this.layout.snapshots, name);
      if (this.busy.has(path)) continue;
      const kind = known.get(name);
      if (kind === undefined) {
        await this.removeQuietly([path], this.logger.child({ path }));
        continue;
      }
      const id = Number(name);
      const leftovers = (await readdir(path)).filter((f) => f.startsWith(TEMP_MARKER)).map((f) => join(path, f));
      if (kind === 'committed') leftovers.push(this.layout.upper(id), this.layout.work(id));
      await this.removeQuietly(leftovers, this.logger.child({ path }));
    }
  }

  /** Removal after the metadata changed must not fail the request: log and let Cleanup retry. */
  private async removeQuietly(paths: readonly string[], log: Logger): Promise<void> {
    for (const path of paths) {
      try {
        await rm(path, { recursive: true, force: true });
      } catch (err) {
        log.warn({ err, path }, 'cannot remove; Cleanup will try again');
      }
    }
  }
}

function lockKey(ns: string, key: string): string {
  return `${ns}\0${key}`;
}

/** Only ENOENT means "nothing to move". */
function renameIfPresent(from: string, to: string): void {
  try {
    renameSync(from, to);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
