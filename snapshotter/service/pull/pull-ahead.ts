/**
 * Layers of a pull converted before containerd's unpacker asks for them.
 *
 * containerd 1.6 unpacks one layer after the other, and fetches the blobs
 * only once the first missing layer is prepared (layer-blobs.ts). CRI labels
 * each layer with `cri.image-layers`, the digests of that layer and all
 * above it, "for preparing layers in parallel"; so at the first missing
 * layer the snapshotter stages all of them here (an import stages the layers
 * of its image the same way). Each finds its blob at once — in containerd's
 * content store, or from the registry (registry/client.ts) — or waits for
 * containerd to fetch it; the conversions themselves run one at a time, in
 * the order staged — a layer waiting for its fetch gives up its place and
 * queues again once the blob is there. Prepares and Commits take the results.
 *
 * containerd 1.6 calls a snapshotter's Prepare and Commit inside a write
 * transaction of its metadata database, and a fetched blob is committed in
 * one too. So a Prepare must never wait for a blob containerd has yet to
 * fetch — that wait could only end in the stall timeout: take() with
 * `waitForFetch: false` answers undefined for such a layer and leaves it
 * staged, and the layer goes the writable way; its Commit (the blob is in
 * containerd by then) takes the conversion. The conversions waiting for
 * fetches do not hold up those whose blobs are there.
 *
 * A staged conversion is only the layer files and what they were built
 * from: the checks that bind it to a chain ID and an image signature run when
 * it is taken. One nobody takes (the pull failed or was cancelled) is
 * dropped after `keepMs`; one left by a crash is a `new-*` directory, which
 * start-up Cleanup deletes.
 */
import type { Logger } from '../../core/log.js';
import type { LayerSource } from './source.js';

/** A layer to convert ahead: what its Prepare's labels will say (a CRI pull's lack the chain ID, known only then). */
export type AheadLayer = LayerSource & { layerDigest: string };

export interface StagedLayer<T> {
  /** Where the layer files are; the taker owns it from now on. */
  dir: string;
  value: T;
}

/** What a conversion tells the queue. */
export interface AheadSteps {
  /**
   * Runs the conversion proper once the ones before it are done (first in
   * the place the layer was staged in, later at the end of the queue);
   * undefined when the queue closed meanwhile.
   */
  turn<R>(work: () => Promise<R>): Promise<R | undefined>;
  /** The blob is not to be had now: the conversion waits for containerd to fetch it (and gives up its place). */
  fetching(): void;
}

export interface PullAheadOptions<T> {
  /** A new directory to convert a layer into (kept from Cleanup until dropped or taken). */
  makeDir(): Promise<string>;
  /** Converts `layer`'s blob into `dir`, the conversion itself in `steps.turn`; undefined when the blob never came. */
  convert(ns: string, layer: AheadLayer, dir: string, steps: AheadSteps): Promise<T | undefined>;
  /** Deletes a directory made by makeDir that nobody took. */
  drop(dir: string): Promise<void>;
  logger: Logger;
  /** How long a finished conversion waits to be taken (default 5 minutes). */
  keepMs?: number;
}

/** A place in the conversion queue. */
interface Slot {
  /** Resolves when the places before it are done. */
  ready: Promise<unknown>;
  /** Done with it (used or given up); idempotent. */
  release(): void;
}

interface Entry<T> {
  result: Promise<StagedLayer<T> | undefined>;
  /** Waiting for containerd to fetch the blob, now. */
  awaitingFetch: boolean;
  /** Resolves once the conversion has first started waiting for a fetch. */
  fetchWait: Promise<void>;
  expiry?: NodeJS.Timeout;
}

export class PullAhead<T> {
  private readonly entries = new Map<string, Entry<T>>();
  /** The conversions run one after the other: a node's pull must not take every core and the memory of several. */
  private tail: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: PullAheadOptions<T>) {}

  /** Stages the conversion of each of `layers` not staged already. */
  stage(ns: string, layers: readonly AheadLayer[]): void {
    const queued = layers.filter((layer) => !this.entries.has(entryKey(ns, layer.layerDigest)));
    if (queued.length === 0) return;
    this.options.logger.info({ ns, image: queued[0]!.imageRef, layers: queued.map((l) => l.layerDigest) }, "converting the pull's layers ahead of their unpack");
    for (const layer of queued) {
      const id = entryKey(ns, layer.layerDigest);
      let fetchStarted!: () => void;
      const entry: Entry<T> = { awaitingFetch: false, fetchWait: new Promise((resolve) => (fetchStarted = resolve)), result: Promise.resolve(undefined) };
      let place: Slot | undefined = this.reserveSlot();
      const steps: AheadSteps = {
        fetching: () => {
          entry.awaitingFetch = true;
          fetchStarted();
          place?.release();
          place = undefined;
        },
        turn: (work) => {
          entry.awaitingFetch = false;
          const slot = place ?? this.reserveSlot();
          place = undefined;
          return this.inSlot(slot, work);
        },
      };
      entry.result = this.run(ns, layer, steps).finally(() => place?.release());
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
   * what the conversion threw. Each is taken once. Without `waitForFetch`,
   * one waiting for containerd's fetch is not waited for: undefined, and it
   * stays staged for a later taker.
   */
  async take(ns: string, digest: string, options: { waitForFetch?: boolean } = {}): Promise<StagedLayer<T> | undefined> {
    const id = entryKey(ns, digest);
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (options.waitForFetch === false) {
      // Until it either finishes or has to wait for a fetch (finding the blob, a registry's answer, the queue).
      await Promise.race([entry.fetchWait, entry.result.catch(() => undefined)]);
      if (entry.awaitingFetch) return undefined;
    }
    if (this.entries.get(id) !== entry) return undefined;
    this.entries.delete(id);
    clearTimeout(entry.expiry);
    return entry.result;
  }

  /**
   * Shutdown: queued conversions do not start; the running one is waited
   * for; nothing staged is kept (what still waits for a fetch is dropped
   * when that wait ends, not waited for).
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.tail;
    for (const [id, entry] of this.entries) {
      const expired = this.expire(id, entry);
      if (!entry.awaitingFetch) await expired;
    }
  }

  /** The next place at the end of the queue. */
  private reserveSlot(): Slot {
    const ready = this.tail;
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    this.tail = ready.then(() => done);
    return { ready, release };
  }

  private async inSlot<R>(slot: Slot, work: () => Promise<R>): Promise<R | undefined> {
    try {
      await slot.ready;
      return this.closed ? undefined : await work();
    } finally {
      slot.release();
    }
  }

  private async run(ns: string, layer: AheadLayer, steps: AheadSteps): Promise<StagedLayer<T> | undefined> {
    if (this.closed) return undefined;
    const dir = await this.options.makeDir();
    let value: T | undefined;
    try {
      value = await this.options.convert(ns, layer, dir, steps);
    } catch (err) {
      await this.options.drop(dir);
      throw err;
    }
    if (value !== undefined) return { dir, value };
    await this.options.drop(dir);
    if (!this.closed) this.options.logger.info({ ns, digest: layer.layerDigest }, 'a layer blob to convert ahead never came: the pull stopped');
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
