/**
 * Finds the blob of the layer an unpack or Commit is about in containerd's
 * content store: by CRI's layer-digest label, or by resolving the chain ID
 * through the namespace's images (containerd/image-layers.ts).
 *
 * containerd 1.6's unpacker prepares a layer BEFORE it fetches the layer's
 * blob (unpacker.go starts the fetches of layers i… only after the Prepare of
 * the first missing layer i succeeded), and it commits a fetched blob in a
 * write transaction of the same database its Prepare and Commit requests run
 * in. So only work outside a request may wait for a fetch (`waitForFetch`,
 * pull-ahead.ts): it waits while any fetch of the namespace makes progress —
 * containerd fetches a few blobs at a time, so a layer's turn comes while the
 * others progress. Finding nothing is never an error: the caller falls back
 * to containerd's own unpack, which checks the layer's diff ID itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../core/log.js';
import type { ContentClient } from '../containerd/content.js';
import type { ImageLayer, ImageLayers } from '../containerd/image-layers.js';
import type { LayerSource } from './source.js';

export interface LayerBlob {
  digest: string;
  /** The diff ID the image config promises, when the layer was found through an image. */
  diffId: string | undefined;
  /** Images known to use the layer: the one being pulled and those found through the chain ID. */
  images: string[];
  /** The layers above it in its image, when it was found through one: an unpack will want them next. */
  above: ImageLayer[];
}

export interface LayerBlobsOptions {
  content: ContentClient;
  imageLayers: ImageLayers;
  logger: Logger;
  /** How often a fetch in progress is looked at (default 25 ms). */
  pollMs?: number;
  /** When no fetch of the namespace has progressed for this long, a fetch is not waited for any longer (default 10 s). */
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
   * The layer's blob when containerd has it — with `waitForFetch`, once
   * containerd has fetched it. Undefined when there is none (or containerd
   * cannot be asked: logged), so the caller takes the other path.
   */
  async find(ns: string, source: LayerSource, options: { waitForFetch: boolean }): Promise<LayerBlob | undefined> {
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
        above: match?.above ?? [],
      };
      if (await this.content.info(ns, digest)) return blob;
      if (options.waitForFetch && (await this.fetched(ns, digest))) return blob;
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

  /** Waits while any ingest of the namespace makes progress; true once the blob of `digest` is complete. */
  private async fetched(ns: string, digest: string): Promise<boolean> {
    let last: string | undefined;
    let progressAt = Date.now();
    for (;;) {
      const state = (await this.content.ingests(ns)).map((i) => `${i.ref}@${i.offset}`).join(',');
      if (state !== last) progressAt = Date.now();
      else if (Date.now() - progressAt > this.stallMs) return false;
      last = state;
      await sleep(this.pollMs);
      if (await this.content.info(ns, digest)) return true;
    }
  }
}
