/**
 * Image layers by chain ID, found the way containerd itself names snapshots:
 * each image of the namespace → its manifest (or the manifests of its index
 * that are present) → the config's rootfs.diff_ids → chain IDs
 * (oci/chain-id.ts). Manifests and configs are content-addressed, so what is
 * computed for a manifest digest holds for good; it is cached (bounded).
 *
 * Images whose documents are absent (another platform of an index, content
 * removed) are skipped; other failures are reported per image, so callers
 * can decide whether an unreadable image matters (protection fails closed).
 */
import { createHash } from 'node:crypto';
import { IntegrityViolationError, InvalidArgumentError, NotFoundError, toIntegrityError, type IntegrityError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { chainIds } from '../../oci/chain-id.js';
import { INDEX_TYPES, MANIFEST_TYPES, parseIndex, parseManifest, type Descriptor, type ImageManifest } from '../../oci/types.js';
import type { ContentClient } from './content.js';
import type { ImageClient, ImageTarget } from './images.js';

export interface ImageLayer {
  /** The layer blob (manifest `layers[i]`). */
  blob: ImageTarget;
  /** Digest of the uncompressed layer, from the config's rootfs.diff_ids. */
  diffId: string;
  chainId: string;
}

export interface ManifestLayers {
  manifest: string;
  /** The manifest itself (digest-checked): its annotations hold the signature. */
  document: ImageManifest;
  /** Bottom layer first. */
  layers: ImageLayer[];
}

export interface ImageChains {
  name: string;
  /** The manifests of the image found in the content store (one for a manifest, those present for an index). */
  manifests: ManifestLayers[];
  /** Set when the image's documents could not be read (not when they are merely absent). */
  error?: IntegrityError;
}

export interface LayerMatch {
  layer: ImageLayer;
  /** The layers above it, bottom first, in the first image found to hold it. */
  above: ImageLayer[];
  /** Every image of the namespace whose layer chain contains the layer's chain ID. */
  images: string[];
}

/** Manifests, indexes and configs are small; anything bigger is not one. */
const MAX_DOCUMENT_BYTES = 8 << 20;
const DEFAULT_CACHE_ENTRIES = 512;

export class ImageLayers {
  private readonly cache = new Map<string, ManifestLayers>();
  /** Index digest → its manifest descriptors (an index never changes; which children are present does). */
  private readonly indexes = new Map<string, Descriptor[]>();

  constructor(
    private readonly content: ContentClient,
    private readonly images: ImageClient,
    private readonly logger: Logger,
    private readonly cacheEntries = DEFAULT_CACHE_ENTRIES,
  ) {}

  /** The images of `ns` (those `select` keeps, default all) with their layer chains. */
  async imageChains(ns: string, select: (name: string) => boolean = () => true): Promise<ImageChains[]> {
    const records = (await this.images.list(ns)).filter((r) => select(r.name));
    const result: ImageChains[] = [];
    for (const record of records) {
      try {
        result.push({ name: record.name, manifests: await this.targetLayers(ns, record.target, record.name, 0) });
      } catch (err) {
        const error = toIntegrityError(err);
        this.logger.warn({ ns, image: record.name, err: error }, 'cannot read the layers of an image');
        result.push({ name: record.name, manifests: [], error });
      }
    }
    return result;
  }

  /** The layer that `chainId` names in the images of `ns`, and every image whose chain contains it. */
  async find(ns: string, chainId: string): Promise<LayerMatch | undefined> {
    let first: { layer: ImageLayer; above: ImageLayer[] } | undefined;
    const images: string[] = [];
    for (const image of await this.imageChains(ns)) {
      const manifest = image.manifests.find((m) => m.layers.some((l) => l.chainId === chainId));
      if (!manifest) continue;
      const at = manifest.layers.findIndex((l) => l.chainId === chainId);
      first ??= { layer: manifest.layers[at]!, above: manifest.layers.slice(at + 1) };
      images.push(image.name);
    }
    return first && { ...first, images };
  }

  private async targetLayers(ns: string, target: ImageTarget, image: string, depth: number): Promise<ManifestLayers[]> {
    if (MANIFEST_TYPES.has(target.mediaType)) {
      const layers = await this.manifestLayers(ns, target.digest, image);
      return layers ? [layers] : [];
    }
    if (!INDEX_TYPES.has(target.mediaType) || depth > 1) return [];
    let children = this.indexes.get(target.digest);
    if (!children) {
      const bytes = await this.document(ns, target.digest, `index of image ${image}`);
      if (!bytes) return [];
      children = parseIndex(bytes, `index ${target.digest} of image ${image}`).manifests;
      this.indexes.set(target.digest, children);
      if (this.indexes.size > this.cacheEntries) this.indexes.delete(this.indexes.keys().next().value!);
    }
    const manifests: ManifestLayers[] = [];
    for (const child of children) {
      manifests.push(...(await this.targetLayers(ns, descriptorTarget(child), image, depth + 1)));
    }
    return manifests;
  }

  /** The manifest `digest` of `image` with its layers; undefined when it or its config is not in the content store. */
  async manifestLayers(ns: string, digest: string, image: string): Promise<ManifestLayers | undefined> {
    const cached = this.cache.get(digest);
    if (cached) {
      // Most recently used last: eviction takes the first.
      this.cache.delete(digest);
      this.cache.set(digest, cached);
      return cached;
    }
    const where = `manifest ${digest} of image ${image}`;
    const manifestBytes = await this.document(ns, digest, where);
    if (!manifestBytes) return undefined;
    const manifest = parseManifest(manifestBytes, where);
    const configBytes = await this.document(ns, manifest.config.digest, `config of ${where}`);
    if (!configBytes) return undefined;
    const diffIds = configDiffIds(configBytes, `config ${manifest.config.digest} of ${where}`);
    if (diffIds.length !== manifest.layers.length) {
      throw new InvalidArgumentError(`${where} has ${manifest.layers.length} layers, its config lists ${diffIds.length} rootfs.diff_ids`, {
        hint: 'the image is malformed; rebuild and push it again',
      });
    }
    const chains = chainIds(diffIds);
    const layers = manifest.layers.map((blob, i) => ({ blob: descriptorTarget(blob), diffId: diffIds[i]!, chainId: chains[i]! }));
    const result = { manifest: digest, document: manifest, layers };
    this.cache.set(digest, result);
    if (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
    return result;
  }

  /** A small document's bytes, checked against its digest; undefined when absent. */
  private async document(ns: string, digest: string, where: string): Promise<Buffer | undefined> {
    const chunks: Uint8Array[] = [];
    let bytes = 0;
    const hash = createHash('sha256');
    try {
      for await (const chunk of this.content.read(ns, digest)) {
        bytes += chunk.length;
        if (bytes > MAX_DOCUMENT_BYTES) {
          throw new InvalidArgumentError(`${where} (${digest}) is larger than ${MAX_DOCUMENT_BYTES} bytes`, {
            hint: 'it is not an image manifest, index or config',
          });
        }
        hash.update(chunk);
        chunks.push(chunk);
      }
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) {
      throw new IntegrityViolationError(`${where}: containerd's content store returned bytes with digest ${actual} for ${digest}`, {
        hint: 'the content store is corrupted: remove the image (ctr -n <ns> images rm) and pull it again',
      });
    }
    return Buffer.concat(chunks);
  }
}

function descriptorTarget(d: Descriptor): ImageTarget {
  return { mediaType: d.mediaType, digest: d.digest, size: d.size };
}

/** rootfs.diff_ids of an OCI or Docker image config. */
function configDiffIds(bytes: Buffer, where: string): string[] {
  let config: { rootfs?: { diff_ids?: unknown } };
  try {
    config = JSON.parse(bytes.toString('utf8')) as typeof config;
  } catch (err) {
    throw new InvalidArgumentError(`${where} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  const ids = config?.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.some((id) => typeof id !== 'string')) {
    throw new InvalidArgumentError(`${where} has no rootfs.diff_ids list`, { hint: 'the image config is malformed; rebuild the image' });
  }
  return ids as string[];
}
