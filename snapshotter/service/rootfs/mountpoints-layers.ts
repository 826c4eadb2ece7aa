/**
 * The mountpoints layers and their lifetime. What a mountpoints layer holds
 * depends on the image (mountpoints.ts), so there is one per layer chain and
 * configuration: a committed snapshot in MOUNTPOINTS_NAMESPACE, which no
 * containerd client can name, called `<top layer id>/<configuration digest>`.
 * The top layer's snapshot id names the chain exactly (ids are never reused,
 * and a snapshot's parents never change), also where a chain has no chain ID
 * (a committed container).
 *
 * Built when the first read-only container of the chain is prepared, from
 * the chain's own layer mounts; then mounted once, reference-counted by the
 * containers above it and restored after a restart like every layer. It is
 * removed with its top layer, and at start-up and Cleanup when its top layer
 * is gone or the configuration changed, once no container uses it (the
 * metadata refuses to remove a layer a snapshot stands on). A layer a Prepare
 * is about to use is pinned: removal waits for the next Cleanup.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { InternalError, NotFoundError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { KeyedLock } from '../keyed-lock.js';
import { NEW_PREFIX, publishDirectory, type RootLayout } from '../layout.js';
import type { MetadataStore } from '../metadata/store.js';
import type { MountManager } from '../mounts/manager.js';
import { MergedTree, type LayerFs } from './merged-tree.js';
import { buildMountpointsLayer, MOUNTPOINTS_NAMESPACE, planMountpoints, type MountpointsSpec } from './mountpoints.js';

export interface MountpointsLayersOptions {
  store: MetadataStore;
  layout: RootLayout;
  mounts: MountManager;
  /** The configured mount targets; undefined when no container is read-only (every mountpoints layer is stale). */
  spec: MountpointsSpec | undefined;
  /** How the image layers' mounts are read. */
  layerFs: LayerFs;
  /** Directories under snapshots/ that Cleanup must leave alone while they are worked in. */
  busy: Set<string>;
  logger: Logger;
}

export class MountpointsLayers {
  private readonly options: MountpointsLayersOptions;
  private readonly digest: string | undefined;
  private readonly lock = new KeyedLock();
  private readonly pins = new Map<number, number>();

  constructor(options: MountpointsLayersOptions) {
    this.options = options;
    this.digest = options.spec && `sha256:${createHash('sha256').update(JSON.stringify([options.spec.dirs, options.spec.files])).digest('hex')}`;
  }

  /**
   * Runs `use` with the id of the mountpoints layer of the chain `layers`
   * (committed layer ids, top first), building it first if there is none;
   * it is not removed while `use` runs.
   */
  async with<T>(layers: readonly number[], use: (id: number) => Promise<T>): Promise<T> {
    const { spec } = this.options;
    const top = layers[0];
    if (spec === undefined || top === undefined) throw new InternalError('a mountpoints layer needs a configuration and an image layer');
    const name = `${top}/${this.digest}`;
    const id = await this.lock.run(name, async () => {
      const found = this.find(name) ?? (await this.build(name, spec, layers));
      this.pins.set(found, (this.pins.get(found) ?? 0) + 1);
      return found;
    });
    try {
      return await use(id);
    } finally {
      const left = (this.pins.get(id) ?? 1) - 1;
      if (left > 0) this.pins.set(id, left);
      else this.pins.delete(id);
    }
  }

  /**
   * Removes the mountpoints layers whose top layer is gone or whose
   * configuration is not the current one, unless a container uses them;
   * `remove` is the snapshotter's Remove (which refuses those).
   */
  async retire(remove: (ns: string, key: string) => Promise<void>): Promise<void> {
    const { store, logger } = this.options;
    for (const layer of store.walk(MOUNTPOINTS_NAMESPACE, [])) {
      const [top, digest] = layer.name.split('/');
      if (digest === this.digest && store.committedLayer(Number(top)) !== undefined) continue;
      await this.lock.run(layer.name, async () => {
        const id = this.find(layer.name);
        if (id === undefined || this.pins.has(id)) return;
        await remove(MOUNTPOINTS_NAMESPACE, layer.name).then(
          () => logger.info({ layer: id, name: layer.name }, 'mountpoints layer removed'),
          (err: unknown) => logger.debug({ name: layer.name, err }, 'a stale mountpoints layer is still in use'),
        );
      });
    }
  }

  private find(name: string): number | undefined {
    try {
      return this.options.store.getInfo(MOUNTPOINTS_NAMESPACE, name).id;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  /** Reads the chain's merged tree from its layer mounts, builds the layer and commits it under `name`. */
  private async build(name: string, spec: MountpointsSpec, layers: readonly number[]): Promise<number> {
    const { store, layout, mounts, layerFs, busy, logger } = this.options;
    await mounts.acquire(layers);
    const temp = await mkdtemp(join(layout.snapshots, NEW_PREFIX));
    busy.add(temp);
    try {
      const plan = await planMountpoints(spec, new MergedTree(layers.map((l) => mounts.mountPoint(l)), layerFs));
      const built = await buildMountpointsLayer(plan.entries, temp);
      const layer = { rootHash: built.rootHash, usage: { size: built.bytes, inodes: built.inodes } };
      const id = store.transaction(() => {
        const s = store.insertCommitted(MOUNTPOINTS_NAMESPACE, name, '', layer, {});
        publishDirectory(temp, layout.snapshot(s.id));
        return s.id;
      });
      logger.info({ layer: id, name, top: layers[0], entries: plan.entries.map((e) => e.path), notes: plan.notes }, 'mountpoints layer built');
      return id;
    } finally {
      busy.delete(temp);
      // Gone when it was renamed into place; a failure leaves it, and so does a rolled-back rename (Cleanup).
      await rm(temp, { recursive: true, force: true });
      await mounts.release(layers);
    }
  }
}
