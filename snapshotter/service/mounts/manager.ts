/**
 * Each committed layer is mounted once, under `<dir>/<id>`, while anything
 * needs it: every active snapshot and view holds one reference on each layer
 * below it. The first reference mounts the layer; when the last one goes the
 * layer stays mounted, idle, for a grace period, because the next user is
 * usually right behind (an unpack of layer N+1 stands on the layers its
 * Commit of layer N just released: without the grace period an image of N
 * layers costs N²/2 mounts; and a container started again within the grace
 * period finds its layers mounted, where a new mount through dm-verity reads
 * and hashes the whole layer). Idle layers are unmounted when their grace
 * period ends, by close() (shutdown) and by forget() when the layer itself is
 * removed; sweep() (Cleanup) retries failed unmounts.
 * Operations on one layer run one after the other; different layers proceed
 * in parallel. After a restart, restore() adopts the mounts that are still there
 * (mountinfo) and fixes the rest, so no container loses its lower layers.
 */
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { isNotFound } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { KeyedLock } from '../keyed-lock.js';
import type { MountInfoEntry } from './mountinfo.js';

/** A committed layer, as mounting it needs it. */
export interface MountableLayer {
  id: number;
  /** The EROFS image and its dm-verity hash tree. */
  image: string;
  hashTree: string;
  /** The root hash the layer must have (the one recorded at conversion); an input, never read from disk. */
  rootHash: string;
  /** The snapshot's namespace and name (chainID), for logs and errors. */
  namespace: string;
  name: string;
}

/** The I/O the manager needs; tests without root stand in a fake. */
export interface LayerMounter {
  /** Mounts the layer read-only on `target`, an existing empty directory. */
  mount(layer: MountableLayer, target: string): Promise<void>;
  unmount(target: string): Promise<void>;
  /** The mount table of this process. */
  mounts(): Promise<MountInfoEntry[]>;
  /** Whether a mount table entry is `layer` mounted the way mount() does it. */
  isMountOf(entry: MountInfoEntry, layer: MountableLayer): Promise<boolean>;
  /** Throws when a mounted layer must not get another user (its dm-verity device found corruption). */
  check?(layer: MountableLayer, target: string): Promise<void>;
  /** Whether check() would let a new user have the mounted layer, without refusing anything (no logs, no metrics). */
  reusable?(layer: MountableLayer, target: string): Promise<boolean>;
  /** Drops what earlier mounts left behind and nothing uses (dm-verity devices). */
  sweep?(): Promise<void>;
}

export interface MountManagerOptions {
  /** Parent of the mount points; short, see snapshot-mounts.ts. */
  dir: string;
  /** A committed layer by id. */
  layerOf(layer: number): MountableLayer;
  mounter: LayerMounter;
  logger: Logger;
  /** How long a layer nobody references stays mounted for its next user; 0 unmounts at once. */
  idleGraceMs?: number;
}

interface LayerState {
  refs: number;
  mounted: boolean;
  /** Pending unmount of an idle layer: set while its grace period runs. */
  idleTimer?: NodeJS.Timeout;
}

export class MountManager {
  readonly dir: string;
  private readonly layerOf: (layer: number) => MountableLayer;
  private readonly mounter: LayerMounter;
  private readonly logger: Logger;
  private readonly idleGraceMs: number;
  private readonly layers = new Map<number, LayerState>();
  private readonly lock = new KeyedLock();

  constructor(options: MountManagerOptions) {
    this.dir = options.dir;
    this.layerOf = options.layerOf;
    this.mounter = options.mounter;
    this.logger = options.logger;
    this.idleGraceMs = options.idleGraceMs ?? 0;
  }

  /** Where layer `layer` is mounted while referenced. */
  mountPoint(layer: number): string {
    return join(this.dir, String(layer));
  }

  /** References held on `layer` (0 if none). */
  references(layer: number): number {
    return this.layers.get(layer)?.refs ?? 0;
  }

  /** Takes one reference on each layer, mounting those not mounted yet. All or nothing. */
  async acquire(layers: readonly number[]): Promise<void> {
    const results = await Promise.allSettled(
      layers.map((layer) =>
        this.lock.run(String(layer), async () => {
          const state = this.state(layer);
          if (state.mounted) await this.mounter.check?.(this.layerOf(layer), this.mountPoint(layer));
          else await this.mountLayer(layer);
          state.refs++;
          clearTimeout(state.idleTimer);
          state.idleTimer = undefined;
        }),
      ),
    );
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await this.release(layers.filter((_, i) => results[i]!.status === 'fulfilled'));
      throw failed.reason;
    }
  }

  /**
   * Drops one reference on each layer; those nobody needs any more go idle
   * (and are unmounted after the grace period). Never throws: it runs after
   * the metadata changed, so a failed unmount is logged and retried by sweep().
   */
  async release(layers: readonly number[]): Promise<void> {
    await Promise.all(
      layers.map((layer) =>
        this.lock.run(String(layer), async () => {
          const state = this.state(layer);
          if (state.refs === 0) {
            this.logger.error({ layer }, 'released a layer that holds no reference');
            return;
          }
          state.refs--;
          if (state.refs > 0) return;
          // Only a mount the next user could take is worth keeping.
          if (this.idleGraceMs > 0 && (await this.reusable(layer))) this.scheduleIdleUnmount(layer, state);
          else await this.unmountLayer(layer);
        }),
      ),
    );
  }

  /** Unmounts what holds no reference and is past its grace period (an unmount failed earlier); the mounter drops its leftovers. */
  async sweep(): Promise<void> {
    await this.unmountIdle([...this.layers.keys()], { inGrace: false });
    await this.mounter.sweep?.();
  }

  /** The layer is being removed: unmount it now if it is idle (a referenced layer cannot be removed). */
  async forget(layer: number): Promise<void> {
    await this.unmountIdle([layer], { inGrace: true });
    await this.lock.run(String(layer), async () => {
      // A failed unmount keeps the state, so that sweep() tries again.
      const state = this.layers.get(layer);
      if (state && state.refs === 0 && !state.mounted) this.layers.delete(layer);
    });
  }

  /** Shutdown: idle layers are unmounted; referenced ones stay for their containers (restore() adopts them). */
  async close(): Promise<void> {
    await this.unmountIdle([...this.layers.keys()], { inGrace: true });
  }

  /**
   * Start-up: `needed` maps each layer to the references the metadata says it
   * has. Mounts under `dir` that are still right are adopted, stale or wrong
   * ones unmounted, missing ones mounted; leftover empty mount points go.
   * A layer that cannot be mounted is logged, not fatal: the daemon still
   * serves everything else, and the next acquire() tries again.
   */
  async restore(needed: ReadonlyMap<number, number>): Promise<void> {
    const stacks = new Map<string, MountInfoEntry[]>();
    for (const entry of await this.mounter.mounts()) {
      if (dirname(entry.mountPoint) !== this.dir) continue;
      const stack = stacks.get(entry.mountPoint) ?? [];
      stack.push(entry);
      stacks.set(entry.mountPoint, stack);
    }
    for (const [mountPoint, stack] of stacks) {
      const layer = layerOf(mountPoint);
      if (layer === undefined) {
        this.logger.warn({ mountPoint }, 'leaving a mount in the layer mount directory that is not a layer');
        continue;
      }
      const refs = needed.get(layer) ?? 0;
      const right = refs > 0 && stack.length === 1 && (await this.mounter.isMountOf(stack[0]!, this.layerOf(layer)));
      if (right) {
        this.layers.set(layer, { refs, mounted: true });
        continue;
      }
      this.layers.set(layer, { refs: 0, mounted: true });
      for (let i = 0; i < stack.length; i++) await this.unmountLayer(layer);
    }
    for (const [layer, refs] of needed) {
      const state = this.state(layer);
      state.refs = refs;
      if (state.mounted) continue;
      try {
        await this.mountLayer(layer);
      } catch (err) {
        this.logger.error({ layer, err }, 'cannot mount a layer that snapshots need; retrying on next use');
      }
    }
    await this.removeIdleMountPoints();
    await this.mounter.sweep?.();
  }

  private async reusable(layer: number): Promise<boolean> {
    if (!this.mounter.reusable) return true;
    try {
      return await this.mounter.reusable(this.layerOf(layer), this.mountPoint(layer));
    } catch {
      return false;
    }
  }

  private scheduleIdleUnmount(layer: number, state: LayerState): void {
    clearTimeout(state.idleTimer);
    state.idleTimer = setTimeout(() => {
      state.idleTimer = undefined;
      void this.unmountIdle([layer], { inGrace: true });
    }, this.idleGraceMs);
    // An idle mount never keeps the daemon alive; close() unmounts what is left.
    state.idleTimer.unref();
  }

  /** Unmounts those of `layers` nobody references; `inGrace`: also those whose grace period still runs. */
  private async unmountIdle(layers: readonly number[], { inGrace }: { inGrace: boolean }): Promise<void> {
    await Promise.all(
      layers.map((layer) =>
        this.lock.run(String(layer), async () => {
          const state = this.layers.get(layer);
          if (!state || state.refs > 0 || (state.idleTimer !== undefined && !inGrace)) return;
          clearTimeout(state.idleTimer);
          state.idleTimer = undefined;
          if (state.mounted) await this.unmountLayer(layer);
        }),
      ),
    );
  }

  private state(layer: number): LayerState {
    let state = this.layers.get(layer);
    if (!state) {
      state = { refs: 0, mounted: false };
      this.layers.set(layer, state);
    }
    return state;
  }

  private async mountLayer(layer: number): Promise<void> {
    const target = this.mountPoint(layer);
    await mkdir(target, { recursive: true, mode: 0o755 });
    try {
      await this.mounter.mount(this.layerOf(layer), target);
    } catch (err) {
      await rmdir(target).catch(() => undefined);
      throw err;
    }
    this.state(layer).mounted = true;
    this.logger.debug({ layer, mountPoint: target }, 'layer mounted');
  }

  private async unmountLayer(layer: number): Promise<void> {
    const target = this.mountPoint(layer);
    try {
      await this.mounter.unmount(target);
    } catch (err) {
      this.logger.warn({ layer, mountPoint: target, err }, 'cannot unmount an unused layer; Cleanup will try again');
      return;
    }
    const still = (await this.mounter.mounts()).some((e) => e.mountPoint === target);
    if (still) return;
    this.state(layer).mounted = false;
    await rmdir(target).catch((err: unknown) => {
      if (!isNotFound(err)) this.logger.warn({ layer, mountPoint: target, err }, 'cannot remove an unused mount point');
    });
    this.logger.debug({ layer, mountPoint: target }, 'layer unmounted');
  }

  private async removeIdleMountPoints(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const mountPoints = new Set((await this.mounter.mounts()).map((e) => e.mountPoint));
    for (const name of names) {
      const path = join(this.dir, name);
      if (mountPoints.has(path)) continue;
      // rmdir only: a non-empty directory is not an idle mount point of ours.
      await rmdir(path).catch(() => undefined);
    }
  }
}

function layerOf(path: string): number | undefined {
  const name = basename(path);
  return /^[1-9][0-9]*$/.test(name) ? Number(name) : undefined;
}
