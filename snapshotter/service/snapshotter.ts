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
 *
 * With `blobs` (containerd's content store), image layers are built from
 * their blobs: an unpack Prepare whose blob is there — or, with `registry`,
 * can be fetched from the image's registry — is converted and committed at
 * once and answered ALREADY_EXISTS (the stargz/nydus protocol), and the
 * Commit of an unpack that took the writable path converts the blob, not the
 * upper dir. With `rootfs`, containers of protected images get a
 * read-only root: the mountpoints layer over the image layers, no upper dir.
 */
import { randomUUID } from 'node:crypto';
import { chmod, lchown, mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, NotFoundError } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { TEMP_MARKER } from '../core/atomic-file.js';
import { besideKey } from './backend-key.js';
import { DeferredRemoval, moveAside } from './deferred-removal.js';
import { diskUsage } from './disk-usage.js';
import { KeyedLock } from './keyed-lock.js';
import { moveLayerFiles, type BlobLayer, type LayerSourceKind, type LayerStore } from './layers/store.js';
import { NEW_PREFIX, publishDirectory, REMOVING_PREFIX, type RootLayout } from './layout.js';
import type { MetadataStore } from './metadata/store.js';
import {
  layersBelow,
  type CommittedLayer,
  type Kind,
  type Labels,
  type LayerOrigin,
  type MountableSnapshot,
  type SnapshotInfo,
  type Usage,
} from './metadata/types.js';
import type { LayerBlob, LayerBlobs } from './pull/layer-blobs.js';
import { RegistryFetchError } from './registry/errors.js';
import type { RegistryClient } from './registry/client.js';
import { ConversionsAhead } from './pull/convert-ahead.js';
import { checkLayerChain } from './pull/layer-chain.js';
import { PullAhead, type AheadLayer, type AheadSteps } from './pull/pull-ahead.js';
import { claimedChainId, commitSource, criImageLayers, prepareSource, SNAPSHOT_REF_LABEL, type LayerSource } from './pull/source.js';
import { readXattrs } from './layers/xattrs.js';
import { hostLayerFs, type LayerFs } from './rootfs/merged-tree.js';
import { MOUNTPOINTS_NAMESPACE } from './rootfs/mountpoints.js';
import { MountpointsLayers } from './rootfs/mountpoints-layers.js';
import type { RootfsPolicy } from './rootfs/policy.js';
import type { MountManager } from './mounts/manager.js';
import type { LayerPlan, LayerTrust } from './trust/image-trust.js';
import { layerReferences } from './mounts/reconcile.js';
import { snapshotMounts, mountDataBytes, MOUNT_OPTIONS_MAX_BYTES, type Mount } from './mounts/snapshot-mounts.js';
import { tmpfsBytesFor, type UnpackScratch } from './unpack-scratch.js';

export interface SnapshotterOptions {
  layout: RootLayout;
  store: MetadataStore;
  layers: LayerStore;
  mounts: MountManager;
  logger: Logger;
  /** containerd's layer blobs; without them every layer is built from its upper dir. */
  blobs?: LayerBlobs;
  /** Fetches the blobs of a CRI pull that containerd has not fetched yet; without it, containerd's fetches are waited for. */
  registry?: Pick<RegistryClient, 'openBlob' | 'mayFetch'>;
  /** Which containers get a read-only root; without it, none. */
  rootfs?: RootfsPolicy;
  /** How mountpoints layers read the image layers' mounts; default: the host's files. */
  layerFs?: LayerFs;
  /** Checks layers against their image's signature before and after conversion; without it, none are. */
  trust?: LayerTrust;
  /** How long the snapshotter must go without a change before the upper dirs Commits dropped are deleted (deferred-removal.ts). */
  discardQuietMs?: number;
  /** Memory for the upper dirs of unlabelled unpacks whose layer is built from the blob; without it they are on the disk. */
  scratch?: UnpackScratch;
  /** Called for each image layer committed (metrics). */
  onLayerBuilt?: (from: LayerSourceKind) => void;
}

/** A blob converted into layer files, before the checks that make them a snapshot's layer. */
interface ConvertedBlob {
  blob: LayerBlob;
  built: BlobLayer;
  /** The image signature the files must match, when one protects the layer. */
  trust: LayerPlan | undefined;
  /** Where the blob's bytes came from. */
  origin: BlobOrigin;
}

type BlobOrigin = 'containerd' | 'registry';


export class Snapshotter {
  private readonly layout: RootLayout;
  private readonly store: MetadataStore;
  private readonly layers: LayerStore;
  private readonly mountManager: MountManager;
  private readonly logger: Logger;
  private readonly blobs: LayerBlobs | undefined;
  private readonly registry: Pick<RegistryClient, 'openBlob' | 'mayFetch'> | undefined;
  private readonly rootfs: RootfsPolicy | undefined;
  private readonly trust: LayerTrust | undefined;
  private readonly scratch: UnpackScratch | undefined;
  private readonly onLayerBuilt: (from: LayerSourceKind) => void;
  private readonly keys = new KeyedLock();
  /** One conversion per chain ID at a time: concurrent Prepares of one layer convert it once. */
  private readonly chains = new KeyedLock();
  /** The mountpoints layers read-only containers get, one per layer chain (rootfs/mountpoints-layers.ts). */
  private readonly mountpointsLayers: MountpointsLayers;
  /** Directories under snapshots/ that requests are working in; Cleanup leaves them alone. */
  private readonly busy = new Set<string>();
  /** Layers of unlabelled unpacks, built while containerd writes their upper dirs. */
  private readonly ahead = new ConversionsAhead();
  /** Layers of CRI pulls, built while containerd writes the first missing one (pull/pull-ahead.ts). */
  private readonly pullAhead: PullAhead<ConvertedBlob>;
  /** Upper dirs of committed layers, deleted after the pull. */
  private readonly discarded: DeferredRemoval;

  constructor(options: SnapshotterOptions) {
    this.layout = options.layout;
    this.store = options.store;
    this.layers = options.layers;
    this.mountManager = options.mounts;
    this.logger = options.logger;
    this.blobs = options.blobs;
    this.registry = options.registry;
    this.rootfs = options.rootfs;
    this.mountpointsLayers = new MountpointsLayers({
      store: this.store,
      layout: this.layout,
      mounts: this.mountManager,
      spec: this.rootfs?.active ? this.rootfs.mountpoints : undefined,
      layerFs: options.layerFs ?? hostLayerFs((path) => readXattrs(path, '')),
      busy: this.busy,
      logger: this.logger,
    });
    this.trust = options.trust;
    this.scratch = options.scratch;
    this.onLayerBuilt = options.onLayerBuilt ?? (() => {});
    this.discarded = new DeferredRemoval({
      dir: this.layout.snapshots,
      logger: this.logger,
      busy: this.busy,
      ...(options.discardQuietMs !== undefined ? { quietMs: options.discardQuietMs } : {}),
    });
    this.pullAhead = new PullAhead({
      makeDir: () => this.newDirectory(),
      convert: (ns, layer, dir, steps) => this.convertAheadOfPrepare(ns, layer, dir, steps),
      drop: (dir) => this.dropDirectory(dir),
      logger: this.logger,
    });
  }

  /** Start-up reconcile: drop directories the metadata does not know, then bring the layer mounts in line. */
  async start(): Promise<void> {
    await mkdir(this.layout.snapshots, { recursive: true, mode: 0o700 });
    await mkdir(this.mountManager.dir, { recursive: true, mode: 0o755 });
    await this.removeUnknownDirectories();
    await this.retireMountpointsLayers();
    await this.mountManager.restore(layerReferences(this.store.listAll()));
  }

  /**
   * An unpack whose blob containerd has becomes a committed layer right here
   * and the answer is ALREADY_EXISTS; any other unpack gets a writable
   * snapshot; a container gets a read-only root when the rootfs policy says so.
   */
  async prepare(ns: string, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    this.discarded.postpone();
    const source = prepareSource(key, labels);
    if (source.kind === 'unpack') {
      // This layer and those above it, converted one after the other while containerd waits here and then writes.
      if (source.fastPath) this.stageAhead(ns, labels);
      if (source.fastPath && (await this.unpackFromBlob(ns, key, parent, labels, source.layer))) {
        throw new AlreadyExistsError(`layer ${source.layer.chainId} is committed: it was converted from its blob`, {
          hint: 'nothing to do: containerd takes this answer as "skip the unpack"',
        });
      }
      const mounts = await this.create(ns, 'active', key, parent, labels);
      // With the fast path missed, containerd fetches this layer's blob now: its Commit takes the staged conversion.
      if (source.fastPath) return mounts;
      return (await this.convertAhead(ns, key, parent, source.layer)) ?? mounts;
    }
    if (!(await this.readOnlyRoot(ns, key, parent))) return this.create(ns, 'active', key, parent, labels);
    return this.mountpointsLayers.with(this.store.layerChain(ns, parent), (mountpoints) =>
      this.create(ns, 'active', key, parent, labels, mountpoints),
    );
  }

  view(ns: string, key: string, parent: string, labels: Labels): Promise<Mount[]> {
    this.discarded.postpone();
    return this.create(ns, 'view', key, parent, labels);
  }

  mounts(ns: string, key: string): Mount[] {
    return this.mountsOf(this.store.getSnapshot(ns, key));
  }

  async commit(ns: string, name: string, key: string, labels: Labels): Promise<void> {
    this.discarded.postpone();
    const log = this.logger.child({ ns, key, name });
    await this.keys.run(lockKey(ns, key), async () => {
      const active = this.store.checkCommit(ns, key, name);
      const dir = this.layout.snapshot(active.id);
      this.busy.add(dir);
      try {
        const { layer, from } = await this.buildCommitted(ns, key, name, labels, active.id, log);
        try {
          this.store.commitActive(ns, key, name, layer, labels);
        } catch (err) {
          await this.layers.discard(dir);
          throw err;
        }
        log.info({ rootHash: layer.rootHash, bytes: layer.usage.size }, 'snapshot committed');
        this.onLayerBuilt(from);
        // The upper dir is now a layer file; nothing stays extracted. Deleted after the pull, not
        // while containerd writes the next layer (deferred-removal.ts); in memory, at once.
        this.discarded.discard([this.layout.upper(active.id), this.layout.work(active.id)], log);
        await this.scratch?.release(active.id);
      } finally {
        this.busy.delete(dir);
      }
      await this.mountManager.release(layersBelow(active));
    });
  }

  async remove(ns: string, key: string): Promise<void> {
    this.discarded.postpone();
    const log = this.logger.child({ ns, key });
    await this.keys.run(lockKey(ns, key), async () => {
      const trash = join(this.layout.snapshots, `${REMOVING_PREFIX}${randomUUID()}`);
      this.busy.add(trash);
      try {
        await this.ahead.drop(lockKey(ns, key));
        const removed = this.store.remove(ns, key);
        // Only after the transaction: moved before it, a crash in between would leave a row
        // whose directory start-up Cleanup deletes. Now a crash leaves `<id>` or `rm-*`,
        // which the metadata no longer knows, and Cleanup deletes those.
        moveAside(this.layout.snapshot(removed.id), trash, log);
        log.info({ kind: removed.kind }, 'snapshot removed');
        // A removed layer may still be mounted, idle: that mount must not outlive its files.
        if (removed.kind === 'committed') await this.mountManager.forget(removed.id);
        await this.removeQuietly([trash], log);
        await this.scratch?.release(removed.id);
        if (removed.kind !== 'committed') await this.mountManager.release(layersBelow(removed));
        // An image layer's mountpoints layer goes with it (a mountpoints layer has none of its own).
        else if (ns !== MOUNTPOINTS_NAMESPACE) await this.retireMountpointsLayers();
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

  /** The namespace's snapshots; without a namespace (containerd's garbage collector), every namespace's. */
  list(ns: string | undefined, filters: readonly string[]): SnapshotInfo[] {
    if (ns !== undefined) return this.store.walk(ns, filters);
    const namespaces = new Set(this.store.listAll().map((s) => s.namespace));
    // The mountpoints layers are ours: containerd must never see (and collect) them.
    namespaces.delete(MOUNTPOINTS_NAMESPACE);
    return [...namespaces].sort().flatMap((n) => this.store.walk(n, filters));
  }

  /** Active snapshots: what their upper dir holds now. Others: what was recorded (views hold nothing). */
  async usage(ns: string, key: string): Promise<Usage> {
    const { id, info, usage } = this.store.getInfo(ns, key);
    return info.kind === 'active' ? diskUsage(this.upperDirs(id).upper) : usage;
  }

  /** Shutdown: idle layer mounts go; layers that snapshots use stay mounted for their containers. */
  async close(): Promise<void> {
    await this.pullAhead.close();
    await this.discarded.close();
    await this.mountManager.close();
  }

  /** Drops directories and mounts nothing refers to any more. */
  async cleanup(): Promise<void> {
    await this.retireMountpointsLayers();
    await this.removeUnknownDirectories();
    await this.mountManager.sweep();
  }

  private async create(
    ns: string,
    kind: Exclude<Kind, 'committed'>,
    key: string,
    parent: string,
    labels: Labels,
    mountpoints?: number,
  ): Promise<Mount[]> {
    const log = this.logger.child({ ns, key, parent });
    // Fail fast on a bad parent before mounting anything; the transaction checks again.
    const parents = parent === '' ? [] : this.store.layerChain(ns, parent);
    const chain = mountpoints === undefined ? parents : [mountpoints, ...parents];
    const temp = await this.newDirectory();
    let acquired = false;
    let created: string | undefined;
    let snapshot: MountableSnapshot;
    try {
      await mkdir(join(temp, 'fs'), { mode: 0o755 });
      await chmod(join(temp, 'fs'), 0o755);
      if (kind === 'active') await mkdir(join(temp, 'work'), { mode: 0o711 });
      await this.mountManager.acquire(chain);
      acquired = true;
      if (parents.length > 0) {
        // The new root belongs to whoever owns the parent's root, as in containerd's overlay.
        const top = await stat(this.mountManager.mountPoint(parents[0]!));
        await lchown(join(temp, 'fs'), top.uid, top.gid);
      }
      snapshot = this.store.transaction(() => {
        const s = this.store.createSnapshot(ns, kind, key, parent, labels, mountpoints === undefined ? {} : { mountpoints });
        created = this.layout.snapshot(s.id);
        publishDirectory(temp, created);
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
    log.info({ kind, layers: parents.length, readOnly: mountpoints !== undefined }, 'snapshot created');
    return this.mountsOf(snapshot, log);
  }

  /**
   * The pull fast path: when containerd has the layer's blob (or is fetching
   * it), convert it and commit the layer under its chain ID with the
   * Prepare's labels. False: take the writable path.
   */
  private async unpackFromBlob(ns: string, key: string, parent: string, labels: Labels, layer: LayerSource): Promise<boolean> {
    const { blobs } = this;
    const chainId = layer.chainId;
    if (!blobs || chainId === undefined) return false;
    return this.chains.run(lockKey(ns, chainId), async () => {
      const log = this.logger.child({ ns, key, chainId });
      // A concurrent Prepare of the same layer may have converted it meanwhile.
      if (this.store.findCommitted(ns, parent, { name: SNAPSHOT_REF_LABEL, value: chainId }) !== undefined) return true;
      if (parent !== '') this.store.layerChain(ns, parent);
      // Never waiting for containerd's fetch: it cannot commit a blob while this Prepare runs (pull-ahead.ts).
      const digest = layer.layerDigest;
      let staged = digest === undefined ? undefined : await this.pullAhead.take(ns, digest, { waitForFetch: false });
      const blob = staged ? undefined : await blobs.find(ns, layer, { waitForFetch: false });
      // The blob arrived just now: a conversion still staged for it sees it at once.
      if (blob && digest !== undefined) staged = await this.pullAhead.take(ns, digest);
      let temp = staged?.dir;
      let created: string | undefined;
      try {
        let converted = staged?.value;
        if (!converted) {
          if (!blob) {
            log.info({ digest, source: 'upper' }, 'layer blob not in containerd yet: containerd unpacks into a writable snapshot');
            return false;
          }
          temp = await this.newDirectory();
          converted = await this.convertStored(ns, blob, temp, layer);
        }
        const built = await this.acceptConverted(ns, converted, temp!, parent, layer);
        // Named by the chain ID, as containerd names committed layers, beside the key in containerd's
        // `<namespace>/<sequence>/` form so that requests without namespace metadata find it.
        const preferred = besideKey(key, chainId);
        const name = this.nameTaken(ns, preferred) ? key : preferred;
        const s = this.store.transaction(() => {
          const committed = this.store.insertCommitted(ns, name, parent, built, labels);
          created = this.layout.snapshot(committed.id);
          publishDirectory(temp!, created);
          return committed;
        });
        log.info(
          { digest: converted.blob.digest, source: 'blob', from: converted.origin, ahead: staged !== undefined, name, id: s.id, rootHash: built.rootHash },
          'layer converted from its blob at Prepare; containerd skips its unpack',
        );
        this.onLayerBuilt(converted.origin);
        return true;
      } catch (err) {
        if (temp) await this.removeQuietly(created ? [temp, created] : [temp], log);
        throw err;
      } finally {
        if (temp) this.busy.delete(temp);
      }
    });
  }

  /**
   * For an unpack without labels, whose blob containerd may have: build its
   * layer from the blob (pull/convert-ahead.ts); its Commit takes the result.
   * With scratch memory, the layer is built first and containerd then
   * writes the files nobody will read into memory: the new mounts. Without
   * it, or when they do not fit, containerd writes them to the disk while the
   * layer is built (undefined: the mounts stay as they are).
   */
  private async convertAhead(ns: string, key: string, parent: string, layer: LayerSource): Promise<Mount[] | undefined> {
    const { blobs } = this;
    const chainId = layer.chainId;
    if (!blobs || chainId === undefined) return undefined;
    const { id } = this.store.getInfo(ns, key);
    const dir = this.layout.snapshot(id);
    const built = this.ahead.start(lockKey(ns, key), chainId, dir, async () => {
      // containerd not answering now: the Commit asks again and decides.
      const blob = await blobs.find(ns, layer, { waitForFetch: false }).catch(() => undefined);
      if (!blob) return undefined;
      // This layer, then those above it, one after the other: each next one converts while containerd writes this one.
      const staged = (chain: string, digest: string): AheadLayer => ({ chainId: chain, layerDigest: digest, imageRef: undefined, manifestDigest: undefined });
      this.pullAhead.stage(ns, [staged(chainId, blob.digest), ...blob.above.map((l) => staged(l.chainId, l.blob.digest))]);
      const layerBuilt = (await this.adoptStaged(ns, blob.digest, dir, parent, layer, blob))?.layer ?? (await this.buildFromBlob(ns, blob, dir, parent, layer));
      return { layer: layerBuilt, digest: blob.digest };
    });
    if (!this.scratch) return undefined;
    // A failure is the Commit's to report, as when containerd writes to the disk.
    const usage = (await built.catch(() => undefined))?.layer.usage;
    if (!usage || !(await this.scratch.reserve(id, tmpfsBytesFor({ dataBytes: usage.size, inodes: usage.inodes })))) return undefined;
    this.logger.info({ ns, key, chainId }, 'layer built from its blob; containerd unpacks the upper dir it drops into memory');
    return this.mountsOf(this.store.getSnapshot(ns, key));
  }

  /** The layers a CRI pull will unpack from this one up (pull/pull-ahead.ts). */
  private stageAhead(ns: string, labels: Labels): void {
    if (this.blobs) this.pullAhead.stage(ns, criImageLayers(labels));
  }

  /**
   * A layer of a pull, converted before its Prepare asks (pull/pull-ahead.ts):
   * from containerd's content store when the blob is there, else from the
   * registry, else once containerd fetched it.
   */
  private async convertAheadOfPrepare(ns: string, layer: AheadLayer, dir: string, steps: AheadSteps): Promise<ConvertedBlob | undefined> {
    const blobs = this.blobs!;
    const present = await blobs.find(ns, layer, { waitForFetch: false });
    if (present) return steps.turn(() => this.convertStored(ns, present, dir, layer));
    const { registry } = this;
    if (registry && layer.imageRef && registry.mayFetch(layer.imageRef)) {
      const fetched = await steps.turn(() => this.convertFromRegistry(registry, ns, { ...layer, imageRef: layer.imageRef! }, dir));
      if (fetched) return fetched;
    }
    steps.fetching();
    const blob = await blobs.find(ns, layer, { waitForFetch: true });
    return blob && steps.turn(() => this.convertStored(ns, blob, dir, layer));
  }

  /** The layer converted from its registry's blob; undefined when the registry could not give it (logged). */
  private async convertFromRegistry(
    registry: Pick<RegistryClient, 'openBlob' | 'mayFetch'>,
    ns: string,
    layer: AheadLayer & { imageRef: string },
    dir: string,
  ): Promise<ConvertedBlob | undefined> {
    const { imageRef, layerDigest: digest } = layer;
    // Asked again in its turn: a failure of the layers converted before may have started the back-off.
    if (!registry.mayFetch(imageRef)) return undefined;
    const blob: LayerBlob = { digest, diffId: undefined, images: [imageRef], above: [] };
    try {
      return await this.convertBlob(ns, blob, { origin: 'registry', open: () => registry.openBlob(imageRef, digest) }, dir, layer);
    } catch (err) {
      if (!(err instanceof RegistryFetchError)) throw err;
      await this.layers.discard(dir);
      this.logger.warn({ ns, image: imageRef, digest, err }, 'cannot fetch the layer blob from the registry; containerd fetches it');
      return undefined;
    }
  }

  /** Commit's layer: from the blob when this is an unpack of a layer containerd has, else from the upper dir. */
  private async buildCommitted(
    ns: string,
    key: string,
    name: string,
    labels: Labels,
    id: number,
    log: Logger,
  ): Promise<{ layer: CommittedLayer; from: LayerSourceKind }> {
    const dir = this.layout.snapshot(id);
    const source = commitSource(name, labels);
    const unpack = prepareSource(key, labels).kind === 'unpack';
    const ahead = await this.ahead.take(lockKey(ns, key), source.chainId);
    if (ahead) {
      log.info({ chainId: source.chainId, digest: ahead.digest, source: 'blob', ahead: true }, 'layer built from its blob; the upper dir is dropped');
      return { layer: ahead.layer, from: 'containerd' };
    }
    const staged = unpack && source.layerDigest !== undefined
      ? await this.adoptStaged(ns, source.layerDigest, dir, this.store.getInfo(ns, key).info.parent, source)
      : undefined;
    if (staged) {
      log.info({ chainId: source.chainId, digest: source.layerDigest, source: 'blob', ahead: true }, 'layer built from its blob; the upper dir is dropped');
      return { layer: staged.layer, from: staged.origin };
    }
    const { blobs } = this;
    const blob = unpack && blobs && source.chainId ? await blobs.find(ns, source, { waitForFetch: false }) : undefined;
    if (blobs && blob) {
      const layer = await this.buildFromBlob(ns, blob, dir, this.store.getInfo(ns, key).info.parent, source);
      log.info({ chainId: source.chainId, digest: blob.digest, source: 'blob' }, 'layer built from its blob; the upper dir is dropped');
      return { layer, from: 'containerd' };
    }
    // What containerd wrote cannot be checked against a signature: an image that must be signed gets no such layer.
    if (unpack) this.trust?.checkUpperDir(ns, source);
    const layer = await this.layers.commitDirectory(this.upperDirs(id).upper, dir);
    log.info({ chainId: source.chainId, digest: source.layerDigest, source: 'upper' }, 'layer built from the upper dir');
    return { layer: { ...layer, images: source.imageRef ? [source.imageRef] : [] }, from: 'upper' };
  }

  /**
   * The conversion of blob `digest` staged ahead (pull/pull-ahead.ts), moved
   * into `dir` and checked as the layer `layer.chainId` on `parent`;
   * undefined when none was staged or its blob never came. `blob`: what the
   * caller knows about the blob (the images found with it, the diff ID to
   * check), if more than the staged conversion knew.
   */
  private async adoptStaged(
    ns: string,
    digest: string,
    dir: string,
    parent: string,
    layer: LayerSource,
    blob?: LayerBlob,
  ): Promise<{ layer: CommittedLayer; origin: BlobOrigin } | undefined> {
    const staged = await this.pullAhead.take(ns, digest);
    if (!staged) return undefined;
    try {
      await moveLayerFiles(staged.dir, dir);
    } finally {
      await this.dropDirectory(staged.dir);
    }
    const accepted = await this.acceptConverted(ns, blob ? { ...staged.value, blob } : staged.value, dir, parent, layer);
    return { layer: accepted, origin: staged.value.origin };
  }

  /**
   * Converts `blob` into `dir` and checks it is the layer `layer.chainId`
   * names on `parent` — and, for a signed image, first its signature, then
   * the layer against it.
   */
  private async buildFromBlob(ns: string, blob: LayerBlob, dir: string, parent: string, layer: LayerSource): Promise<CommittedLayer> {
    return this.acceptConverted(ns, await this.convertStored(ns, blob, dir, layer), dir, parent, layer);
  }

  /** convertBlob from containerd's content store. */
  private convertStored(ns: string, blob: LayerBlob, dir: string, layer: LayerSource): Promise<ConvertedBlob> {
    const blobs = this.blobs!;
    return this.convertBlob(ns, blob, { origin: 'containerd', open: async () => blobs.read(ns, blob.digest) }, dir, layer);
  }

  /**
   * Checks the signature of a signed image the layer belongs to, then opens
   * the blob's bytes and converts them into `dir`.
   */
  private async convertBlob(
    ns: string,
    blob: LayerBlob,
    bytes: { origin: BlobOrigin; open: () => Promise<AsyncIterable<Uint8Array>> },
    dir: string,
    layer: LayerSource,
  ): Promise<ConvertedBlob> {
    const trust = await this.trust?.plan(ns, layer, blob.digest);
    try {
      return { blob, built: await this.layers.commitBlob(await bytes.open(), dir, blob.digest), trust, origin: bytes.origin };
    } catch (err) {
      throw trust ? trust.conversionFailed(err) : err;
    }
  }

  /** The layer files in `dir` as the layer `layer.chainId` on `parent`, checked against the chain and the signature; else they go. */
  private async acceptConverted(ns: string, converted: ConvertedBlob, dir: string, parent: string, layer: LayerSource): Promise<CommittedLayer> {
    const { blob, built, trust } = converted;
    try {
      const parentChainId = parent === '' ? undefined : this.chainIdOf(ns, parent);
      const checked = checkLayerChain({ digest: blob.digest, diffId: built.diffId, expectedDiffId: blob.diffId, chainId: layer.chainId, parent, parentChainId });
      const signed = trust?.accept(built);
      return { rootHash: built.rootHash, usage: built.usage, ...(checked ? { chainId: checked } : {}), images: blob.images, ...(signed ? { signed } : {}) };
    } catch (err) {
      await this.layers.discard(dir);
      throw err;
    }
  }

  /** A new `new-*` directory under snapshots/, kept from Cleanup until published or dropped. */
  private async newDirectory(): Promise<string> {
    const dir = await mkdtemp(join(this.layout.snapshots, NEW_PREFIX));
    this.busy.add(dir);
    return dir;
  }

  private async dropDirectory(dir: string): Promise<void> {
    await this.removeQuietly([dir], this.logger);
    this.busy.delete(dir);
  }

  /** For a container on `parent`: whether its root must be read-only. */
  private async readOnlyRoot(ns: string, key: string, parent: string): Promise<boolean> {
    if (parent === '' || !this.rootfs?.active) return false;
    const origin = this.store.layerOrigin(ns, parent);
    const chainId = this.chainIdOf(ns, parent, origin);
    const decision = await this.rootfs.decide(ns, { name: parent, chainId, images: origin.images, signedImage: origin.signed?.image });
    this.logger.info({ ns, key, parent, chainId, readOnly: decision.readOnly, reason: decision.reason }, 'container root filesystem');
    return decision.readOnly;
  }

  /** Mountpoints layers of removed chains or of an earlier configuration go once no container uses them. */
  private retireMountpointsLayers(): Promise<void> {
    return this.mountpointsLayers.retire((ns, key) => this.remove(ns, key));
  }

  /** A committed snapshot's chain ID: checked when it was built from its blob, else as containerd named it. */
  private chainIdOf(ns: string, name: string, origin: LayerOrigin = this.store.layerOrigin(ns, name)): string | undefined {
    const { info } = this.store.getInfo(ns, name);
    return origin.chainId ?? claimedChainId(info.name, info.labels);
  }

  private nameTaken(ns: string, name: string): boolean {
    try {
      this.store.getInfo(ns, name);
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return false;
      throw err;
    }
  }

  /** An active snapshot's upper and work dirs: in scratch memory, or in its directory. */
  private upperDirs(id: number): { upper: string; work: string } {
    return this.scratch?.paths(id) ?? { upper: this.layout.upper(id), work: this.layout.work(id) };
  }

  private mountsOf(s: MountableSnapshot, log: Logger = this.logger): Mount[] {
    // A read-only active snapshot mounts like a view of its mountpoints layer and parents: no upper dir.
    const mounts = snapshotMounts(
      s.mountpoints === undefined ? s.kind : 'view',
      this.upperDirs(s.id),
      layersBelow(s).map((id) => this.mountManager.mountPoint(id)),
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
      if (this.busy.has(path) || this.ahead.holds(path)) continue;
      const kind = known.get(name);
      if (kind === undefined) {
        await this.removeQuietly([path], this.logger.child({ path }));
        continue;
      }
      const id = Number(name);
      const leftovers = (await readdir(path)).filter((f) => f.startsWith(TEMP_MARKER)).map((f) => join(path, f));
      // A committed snapshot is its layer files; an active one whose Commit died between
      // building them and its transaction is still active, and its layer files are garbage.
      if (kind === 'committed') leftovers.push(this.layout.upper(id), this.layout.work(id));
      else leftovers.push(this.layout.image(id), this.layout.hashTree(id));
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
