/**
 * Layers of a CRI pull converted before containerd's unpacker asks for them.
 *
 * containerd 1.6 unpacks one layer after the other, and fetches the blobs
 * only once the first missing layer is prepared (layer-blobs.ts). CRI labels
 * each layer with `cri.image-layers`, the digests of that layer and all
 * above it, "for preparing layers in parallel"; so at the first missing
 * layer the snapshotter stages all of them here. They are converted one at a
 * time, in order, each as soon as its blob can be read: from containerd's
 * content store, from the registry (registry/client.ts), or once containerd
 * fetched it. The Prepares then take finished conversions. The first layer
 * is the one whose Prepare is waiting: containerd fetches nothing before it
 * returns, so when its blob cannot be had at once it goes the writable way
 * (and is converted at its Commit) while the layers above it wait for
 * containerd's fetches.
 *
 * A staged conversion is only the layer files and what they were built
 * from: the checks that bind it to a chain ID and an image signature run when
 * it is taken. One nobody takes (the pull failed or was cancelled) is
 * dropped after `keepMs`; one left by a crash is a `new-*` directory, which
 * start-up Cleanup deletes.
 */
import type { Logger } from '../../core/log.js';
import type { LayerSource } from './source.js';

/** A layer to convert ahead: what its Prepare's labels will say, without the chain ID (known only then). */
export type AheadLayer = LayerSource & { layerDigest: string };

export interface StagedLayer<T> {
  /** Where the layer files are; the taker owns it from now on. */
  dir: string;
  value: T;
}

export interface PullAheadOptions<T> {
  /** A new directory to convert a layer into (kept from Cleanup until dropped or taken). */
  makeDir(): Promise<string>;
  /**
   * Converts `layer`'s blob into `dir`; undefined when the blob never came.
   * `preparing`: its Prepare is the one waiting, so containerd will not fetch it meanwhile.
   */
  convert(ns: string, layer: AheadLayer, dir: string, preparing: boolean): Promise<T | undefined>;
  /** Deletes a directory made by makeDir that nobody took. */
  drop(dir: string): Promise<void>;
  logger: Logger;
  /** How long a finished conversion waits to be taken (default 5 minutes). */
  keepMs?: number;
}

interface Entry<T> {
  result: Promise<StagedLayer<T> | undefined>;
  expiry?: NodeJS.Timeout;
}

export class PullAhead<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** The conversions run one after the other: a node's pull must not take every core and the memory of several. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: PullAheadOptions<T>) {}

  /**
   * Queues the conversion of each of `layers` not staged already, in order,
   * after those queued before. Called at the Prepare of `layers[0]`:
   * `preparing` while that Prepare waits for it, not once it goes the
   * writable way (then containerd fetches its blob).
   */
  stage(ns: string, layers: readonly AheadLayer[], options: { preparing: boolean }): void {
    const queued = layers.filter((layer) => !this.entries.has(entryKey(ns, layer.layerDigest)));
    if (queued.length === 0) return;
    const preparing = options.preparing && queued[0] === layers[0] ? queued[0] : undefined;
    this.options.logger.info({ ns, image: queued[0]!.imageRef, layers: queued.map((l) => l.layerDigest) }, "converting the pull's layers ahead of their unpack");
    // Once one blob never came the pull has stopped: the layers after it are not waited for in turn.
    const pull = { stopped: false };
    for (const layer of queued) {
      const id = entryKey(ns, layer.layerDigest);
      const entry: Entry<T> = { result: this.tail.then(() => this.run(ns, layer, layer === preparing, pull)) };
      this.tail = entry.result.catch(() => undefined);
      // Whoever takes the entry sees its failure; until then it must not count as unhandled.
      entry.result.catch(() => undefined);
      void entry.result.then(
        () => this.expireLater(id, entry),
        () => this.expireLater(id, entry),
      );
      this.entries.set(id, entry);
    }
  }

  /**
   * The staged conversion of `digest`, waited for if it is still queued or
   * running; undefined when none was staged or its blob never came. Throws
   * what the conversion threw. Each is taken once.
   */
  async take(ns: string, digest: string): Promise<StagedLayer<T> | undefined> {
    const id = entryKey(ns, digest);
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    this.entries.delete(id);
    clearTimeout(entry.expiry);
    return entry.result;
  }

  /** Shutdown: queued conversions do not start; the running one is waited for; nothing staged is kept. */
  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
    for (const [id, entry] of this.entries) await this.expire(id, entry);
  }

  private async run(ns: string, layer: AheadLayer, preparing: boolean, pull: { stopped: boolean }): Promise<StagedLayer<T> | undefined> {
    if (this.closed || pull.stopped) return undefined;
    const dir = await this.options.makeDir();
    try {
      const value = await this.options.convert(ns, layer, dir, preparing);
      if (value !== undefined) return { dir, value };
    } catch (err) {
      await this.options.drop(dir);
      throw err;
    }
    await this.options.drop(dir);
    // Its Prepare goes the writable way, and that starts containerd's fetches of the others.
    if (preparing) return undefined;
    pull.stopped = true;
    this.options.logger.info({ ns, digest: layer.layerDigest }, 'a layer blob to convert ahead never came: the pull stopped; the layers after it are not waited for');
    return undefined;
  }

  private expireLater(id: string, entry: Entry<T>): void {
    if (this.entries.get(id) !== entry) return;
    entry.expiry = setTimeout(() => void this.expire(id, entry), this.options.keepMs ?? 300_000);
    entry.expiry.unref();
  }

  private async expire(id: string, entry: Entry<T>): Promise<void> {
    if (this.entries.get(id) !== entry) return;
    this.entries.delete(id);
    clearTimeout(entry.expiry);
    const staged = await entry.result.catch(() => undefined);
    if (!staged) return;
    this.options.logger.info({ dir: staged.dir }, 'a layer converted ahead was not asked for: dropped');
    await this.options.drop(staged.dir);
  }
}

function entryKey(ns: string, digest: string): string {
  return `${ns}\0${digest}`;
}
