/**
 * Memory for the upper dirs of unpacks whose layer the snapshotter builds
 * from the blob: `ctr image import` and `ctr image pull` (no labels, so no
 * fast path) make containerd write every layer's files into an upper dir,
 * and Commit then drops them for the layer built from the blob. Written to
 * the disk, those files cost what overlayfs's whole unpack costs; written to
 * this tmpfs, they cost memory for the time of one unpack.
 *
 * One tmpfs at `dir`, `limitBytes` large, mounted fresh at every start (what
 * a crash left in it is garbage). Each upper dir reserves what its layer can
 * take at most before containerd writes — so containerd never meets a full
 * tmpfs — and frees it at Commit or Remove; a layer that does not fit goes to
 * the disk as before.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../core/log.js';

/** What a layer's files can take on a tmpfs at most: its data rounded up to pages, and a page for each inode. */
export function tmpfsBytesFor(layer: { dataBytes: number; inodes: number }): number {
  return layer.dataBytes + PAGE * (layer.inodes + 1);
}

const PAGE = 4096;

export interface ScratchPaths {
  upper: string;
  work: string;
}

/** The mount calls (mounts/scratch-tmpfs.ts), a seam so that the unit tests run without root. */
export interface ScratchMounter {
  mountTmpfs(dir: string, bytes: number): Promise<void>;
  /** Lazily: a containerd still writing into it keeps its files until it is done. */
  unmount(dir: string): Promise<void>;
  isMounted(dir: string): Promise<boolean>;
}

export interface UnpackScratchOptions {
  dir: string;
  limitBytes: number;
  mounter: ScratchMounter;
  logger: Logger;
}

export class UnpackScratch {
  private readonly dir: string;
  private readonly limitBytes: number;
  private readonly mounter: ScratchMounter;
  private readonly logger: Logger;
  /** Snapshot id → the bytes reserved for its upper dir. */
  private readonly held = new Map<number, number>();
  private used = 0;

  constructor(options: UnpackScratchOptions) {
    this.dir = options.dir;
    this.limitBytes = options.limitBytes;
    this.mounter = options.mounter;
    this.logger = options.logger;
  }

  async start(): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (await this.mounter.isMounted(this.dir)) await this.mounter.unmount(this.dir);
    await this.mounter.mountTmpfs(this.dir, this.limitBytes);
  }

  /** Unmounts the tmpfs, if it is still there (something else may have unmounted what is under the root). */
  async close(): Promise<void> {
    this.held.clear();
    this.used = 0;
    if (await this.mounter.isMounted(this.dir)) await this.mounter.unmount(this.dir);
  }

  /** An upper dir in memory for snapshot `id`, whose layer takes at most `bytes`; undefined when they do not fit now. */
  async reserve(id: number, bytes: number): Promise<ScratchPaths | undefined> {
    if (this.held.has(id)) return this.paths(id);
    if (this.used + bytes > this.limitBytes) {
      this.logger.info({ id, bytes, free: this.limitBytes - this.used }, 'no room in memory for the upper dir: containerd unpacks to the disk');
      return undefined;
    }
    this.held.set(id, bytes);
    this.used += bytes;
    const paths = this.paths(id)!;
    try {
      await mkdir(paths.upper, { recursive: true, mode: 0o755 });
      await mkdir(paths.work, { mode: 0o711 });
    } catch (err) {
      await this.release(id);
      throw err;
    }
    return paths;
  }

  /** The in-memory upper dir of snapshot `id`, if it has one. */
  paths(id: number): ScratchPaths | undefined {
    if (!this.held.has(id)) return undefined;
    const base = join(this.dir, String(id));
    return { upper: join(base, 'fs'), work: join(base, 'work') };
  }

  /**
   * Drops snapshot `id`'s upper dir and frees its reservation; nothing when
   * it has none. Files that cannot be removed keep their reservation until
   * the next start, so that a later unpack never finds the tmpfs full.
   */
  async release(id: number): Promise<void> {
    const bytes = this.held.get(id);
    if (bytes === undefined) return;
    this.held.delete(id);
    try {
      await rm(join(this.dir, String(id)), { recursive: true, force: true });
      this.used -= bytes;
    } catch (err) {
      this.logger.warn({ err, id, bytes }, 'cannot remove an upper dir from memory; its room stays taken until the next start');
    }
  }
}
