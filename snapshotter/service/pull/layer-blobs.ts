/**
 * Finds the blob of the layer an unpack or Commit is about in containerd's
 * content store: by CRI's layer-digest label, or by resolving the chain ID
 * through the namespace's images (containerd/image-layers.ts).
 *
 * containerd 1.6's unpacker prepares a layer BEFORE it fetches the layer's
 * blob (unpacker.go starts the fetches of layers i… only after the Prepare of
 * the first missing layer i succeeded). So during a fresh pull:
 *   - the first missing layer's blob is absent and nobody fetches it yet:
 *     there is nothing to wait for, the unpack takes the writable overlay;
 *   - the blobs of the layers above it are being fetched already: `find`
 *     waits for such a fetch (an ingest of that digest that makes progress)
 *     and then the Prepare can take the fast path.
 * A conversion ahead of the unpack (pull-ahead.ts) also waits for a fetch
 * that has not started yet: containerd fetches a few blobs at a time, so a
 * layer's turn comes while the pull's other fetches make progress.
 * Finding nothing is never an error: the caller falls back to containerd's
 * own unpack, which checks the layer's diff ID itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../core/log.js';
import type { ContentClient, Ingest } from '../containerd/content.js';
import type { ImageLayers } from '../containerd/image-layers.js';
import type { LayerSource } from './source.js';

export interface LayerBlob {
  digest: string;
  /** The diff ID the image config promises, when the layer was found through an image. */
  diffId: string | undefined;
  /** Images known to use the layer: the one being pulled and those found through the chain ID. */
  images: string[];
}

/**
 * What `find` waits for when the blob is not there yet: nothing; a fetch of
 * it in progress; or also a fetch not started yet, while the namespace's
 * other fetches make progress.
 */
export type BlobWait = 'no' | 'fetching' | 'queued';

export interface LayerBlobsOptions {
  content: ContentClient;
  imageLayers: ImageLayers;
  logger: Logger;
  /** How often a fetch in progress is looked at (default 25 ms). */
  pollMs?: number;
  /** A fetch (with 'queued': any fetch of the namespace) that has not progressed for this long is not waited for any longer (default 10 s). */
  stallMs?: number;
}

export class LayerBlobs {
  private readonly content: ContentClient;
  private readonly imageLayers: ImageLayers;
  private readonly logger: Logger;
  private readonly pollMs: number;
  private readonly stallMs: number;

  constructor(options: LayerBlobsOptions) {
    this.content = options.content;
    this.imageLayers = options.imageLayers;
    this.logger = options.logger;
    this.pollMs = options.pollMs ?? 25;
    this.stallMs = options.stallMs ?? 10_000;
  }

  /**
   * The layer's blob when containerd has it, or once the fetch `wait` names
   * completes. Undefined when there is none (or containerd cannot be asked:
   * logged), so the caller takes the other path.
   */
  async find(ns: string, source: LayerSource, options: { wait: BlobWait }): Promise<LayerBlob | undefined> {
    const log = this.logger.child({ ns, chainId: source.chainId });
    try {
      // CRI names the blob and the image being pulled: no need to read every image of the
      // namespace (the chain check stands in for the config's diff ID, see layer-chain.ts).
      const match = source.chainId && !source.layerDigest ? await this.imageLayers.find(ns, source.chainId) : undefined;
      const digest = source.layerDigest ?? match?.layer.blob.digest;
      if (digest === undefined) return undefined;
      const blob: LayerBlob = {
        digest,
        diffId: match?.layer.diffId,
        images: [...new Set([...(source.imageRef ? [source.imageRef] : []), ...(match?.images ?? [])])].sort(),
      };
      if (await this.content.info(ns, digest)) return blob;
      if (options.wait !== 'no' && (await this.fetched(ns, digest, options.wait === 'queued'))) return blob;
      return undefined;
    } catch (err) {
      log.warn({ err, digest: source.layerDigest }, "cannot look for the layer's blob in containerd; taking the path without it");
      return undefined;
    }
  }

  /** The blob's bytes from containerd's content store. */
  read(ns: string, digest: string): AsyncIterable<Uint8Array> {
    return this.content.read(ns, digest);
  }

  /**
   * Waits while an ingest of `digest` makes progress — with `queued`, while
   * any ingest of the namespace does, so a fetch waiting for its turn is
   * waited for too; true once the blob is complete.
   */
  private async fetched(ns: string, digest: string, queued: boolean): Promise<boolean> {
    let last: string | undefined;
    let progressAt = Date.now();
    for (;;) {
      const ingests = await this.content.ingests(ns);
      const own = ingests.find((i) => i.ref.endsWith(digest));
      // An ingest that just went away was committed (or aborted): the blob says which.
      if (!own && !queued) return (await this.content.info(ns, digest)) !== undefined;
      const state = queued ? ingests.map((i) => `${i.ref}@${i.offset}`).join(',') : String(own!.offset);
      if (state !== last) progressAt = Date.now();
      else if (Date.now() - progressAt > this.stallMs) return false;
      last = state;
      await sleep(this.pollMs);
      if (await this.content.info(ns, digest)) return true;
    }
  }
}
