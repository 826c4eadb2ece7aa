/**
 * Stand-ins for the two parts of the snapshotter that need root or the
 * layer pipeline, for unit tests (the host tests run the real ones):
 * FakeMounter keeps a mount table in memory instead of calling mount(2);
 * FakeLayerStore records the committed tree as a JSON listing.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { IntegrityViolationError } from '../../snapshotter/core/errors.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { wallClock, type Clock } from '../../snapshotter/core/clock.js';
import { silentLogger } from '../../snapshotter/core/log.js';
import { REMOVING_PREFIX, RootLayout } from '../../snapshotter/service/layout.js';
import { SqliteMetadataStore } from '../../snapshotter/service/metadata/sqlite.js';
import { MountManager, type LayerMounter, type MountableLayer } from '../../snapshotter/service/mounts/manager.js';
import { mountableLayer } from '../../snapshotter/service/mounts/mountable-layer.js';
import { hostLayerFs } from '../../snapshotter/service/rootfs/merged-tree.js';
import { Snapshotter, type SnapshotterOptions } from '../../snapshotter/service/snapshotter.js';
import type { MountInfoEntry } from '../../snapshotter/service/mounts/mountinfo.js';
import { LAYER_HASH_TREE, LAYER_IMAGE, type BlobLayer, type LayerStore } from '../../snapshotter/service/layers/store.js';
import type { CommittedLayer } from '../../snapshotter/service/metadata/types.js';

export class FakeMounter implements LayerMounter {
  readonly table: MountInfoEntry[] = [];
  readonly calls: string[] = [];
  /** Images whose mount fails. */
  readonly failing = new Set<string>();
  /** Milliseconds each mount takes, to let concurrent calls overlap. */
  delayMs = 0;
  private nextId = 100;

  async mount({ image }: MountableLayer, target: string): Promise<void> {
    this.calls.push(`mount ${image} ${target}`);
    if (this.delayMs) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.failing.has(image)) throw new Error(`cannot mount ${image}`);
    this.table.push(entry(this.nextId++, target, image));
  }

  async unmount(target: string): Promise<void> {
    this.calls.push(`unmount ${target}`);
    const i = this.table.map((e) => e.mountPoint).lastIndexOf(target);
    if (i < 0) throw new Error(`${target} is not mounted`);
    this.table.splice(i, 1);
  }

  async mounts(): Promise<MountInfoEntry[]> {
    return [...this.table];
  }

  async isMountOf(e: MountInfoEntry, { image }: MountableLayer): Promise<boolean> {
    return e.fsType === 'erofs' && e.source === image;
  }

  /** A mount made by someone else (e.g. before a restart). */
  add(target: string, image: string, fsType = 'erofs'): void {
    this.table.push({ ...entry(this.nextId++, target, image), fsType });
  }

  mounted(): string[] {
    return this.table.map((e) => e.mountPoint).sort();
  }
}

/** A layer for MountManager tests that need no metadata: image `image`, a made-up root hash and name. */
export function fakeLayer(id: number, image = `/layers/${id}.erofs`): MountableLayer {
  return { id, image, hashTree: `${image}.verity`, rootHash: String(id).padStart(64, '0'), namespace: 'default', name: `layer-${id}` };
}

function entry(id: number, mountPoint: string, source: string): MountInfoEntry {
  return { id, parentId: 1, root: '/', mountPoint, fsType: 'erofs', source, superOptions: 'ro' };
}

/** How mountpoints layers read FakeMounter's "mounts": empty directories, with no xattrs to read (no addon needed). */
export const fakeMountsFs = hostLayerFs(async () => []);

export class FakeLayerStore implements LayerStore {
  /** Fails commits of these source dirs. */
  readonly failing = new Set<string>();
  commits = 0;
  /** How many of the commits were built from blobs. */
  blobCommits = 0;

  async commitDirectory(sourceDir: string, layerDir: string): Promise<CommittedLayer> {
    if (this.failing.has(sourceDir)) throw new Error(`cannot build a layer from ${sourceDir}`);
    const names = (await readdir(sourceDir, { recursive: true })).sort();
    await writeFile(join(layerDir, LAYER_IMAGE), JSON.stringify(names));
    await writeFile(join(layerDir, LAYER_HASH_TREE), '');
    this.commits++;
    return { rootHash: String(this.commits).padStart(64, '0'), usage: { size: names.length * 4096, inodes: names.length + 1 } };
  }

  /** Blobs are taken as uncompressed tars: the diff ID is the blob's digest; the layer lists `blob <digest>`. */
  async commitBlob(blob: AsyncIterable<Uint8Array>, layerDir: string, expectedDigest: string): Promise<BlobLayer> {
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of blob) {
      hash.update(chunk);
      size += chunk.length;
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (digest !== expectedDigest) throw new IntegrityViolationError(`layer digest mismatch: expected ${expectedDigest}, read ${digest}`);
    await writeFile(join(layerDir, LAYER_IMAGE), JSON.stringify([`blob ${digest}`]));
    await writeFile(join(layerDir, LAYER_HASH_TREE), '');
    this.commits++;
    this.blobCommits++;
    return { rootHash: String(this.commits).padStart(64, '0'), diffId: digest, usage: { size, inodes: 1 } };
  }

  async discard(layerDir: string): Promise<void> {
    await rm(join(layerDir, LAYER_IMAGE), { force: true });
    await rm(join(layerDir, LAYER_HASH_TREE), { force: true });
  }
}

/** The file names FakeLayerStore recorded for the layer in `layerDir`. */
export async function fakeLayerContents(layerDir: string): Promise<string[]> {
  return JSON.parse(await readFile(join(layerDir, LAYER_IMAGE), 'utf8')) as string[];
}

/** The directories under `snapshots/`, without the `rm-*` ones that what Commit and Remove discarded waits in for Cleanup. */
export async function snapshotDirectories(layout: RootLayout): Promise<string[]> {
  return (await readdir(layout.snapshots)).filter((name) => !name.startsWith(REMOVING_PREFIX));
}

export interface FakeSnapshotter {
  root: string;
  layout: RootLayout;
  store: SqliteMetadataStore;
  mounter: FakeMounter;
  layers: FakeLayerStore;
  mounts: MountManager;
  snapshotter: Snapshotter;
  /** A new Snapshotter on the same root, store and mount table, as after a daemon restart. */
  restart(): Promise<Snapshotter>;
  dispose(): Promise<void>;
}

/**
 * A started Snapshotter on a temp root with the real metadata store and fake
 * mounts and layers; `extra` adds the pull path and rootfs policy (with fake
 * containerd clients, test/support/containerd-fakes.ts).
 */
export async function fakeSnapshotter(
  clock: Clock = wallClock(),
  extra: Pick<SnapshotterOptions, 'blobs' | 'registry' | 'scratch' | 'rootfs' | 'trust' | 'discardQuietMs' | 'onLayerBuilt'> & { idleGraceMs?: number } = {},
): Promise<FakeSnapshotter> {
  const { idleGraceMs, ...services } = extra;
  const root = await mkdtemp(join(tmpdir(), 'snapshotter-'));
  const layout = new RootLayout(root);
  const store = new SqliteMetadataStore(':memory:', { clock });
  const mounter = new FakeMounter();
  const layers = new FakeLayerStore();
  const make = () => {
    const mounts = new MountManager({ dir: join(root, 'm'), layerOf: (id) => mountableLayer(layout, store, id), mounter, logger: silentLogger, ...(idleGraceMs ? { idleGraceMs } : {}) });
    return { mounts, snapshotter: new Snapshotter({ layout, store, layers, mounts, logger: silentLogger, layerFs: fakeMountsFs, ...services }) };
  };
  const first = make();
  await first.snapshotter.start();
  const fake: FakeSnapshotter = {
    root,
    layout,
    store,
    mounter,
    layers,
    ...first,
    restart: async () => {
      const next = make();
      await next.snapshotter.start();
      fake.mounts = next.mounts;
      fake.snapshotter = next.snapshotter;
      return next.snapshotter;
    },
    dispose: async () => {
      store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
  return fake;
}
