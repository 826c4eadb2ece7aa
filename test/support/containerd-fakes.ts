/**
 * containerd's content and image services in memory, for unit tests of the
 * pull path and the rootfs policy (the host tests talk to a real containerd).
 * Images are built the way containerd stores them: manifest → config with
 * rootfs.diff_ids → layer blobs. Layers are uncompressed tars here, so a
 * layer's diff ID is its blob digest (FakeLayerStore reads blobs that way).
 */
import { createHash } from 'node:crypto';
import { NotFoundError, UnavailableError } from '../../snapshotter/core/errors.js';
import { chainIds } from '../../snapshotter/oci/chain-id.js';
import { MediaType, type ImageManifest } from '../../snapshotter/oci/types.js';
import type { ContentClient, BlobInfo, Ingest } from '../../snapshotter/service/containerd/content.js';
import type { ImageClient, ImageRecord } from '../../snapshotter/service/containerd/images.js';

export function digestOf(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export class FakeContent implements ContentClient {
  /** ns → digest → bytes. */
  readonly blobs = new Map<string, Map<string, Buffer>>();
  /** ns → ingests in progress. */
  readonly ingesting = new Map<string, Ingest[]>();
  /** Every digest read, in order. */
  readonly reads: string[] = [];
  /** When set, every call fails as if containerd did not answer. */
  down = false;

  add(ns: string, bytes: Uint8Array): string {
    const digest = digestOf(bytes);
    let blobs = this.blobs.get(ns);
    if (!blobs) this.blobs.set(ns, (blobs = new Map()));
    blobs.set(digest, Buffer.from(bytes));
    return digest;
  }

  delete(ns: string, digest: string): void {
    this.blobs.get(ns)?.delete(digest);
  }

  async info(ns: string, digest: string): Promise<BlobInfo | undefined> {
    this.check();
    const blob = this.blobs.get(ns)?.get(digest);
    return blob && { digest, size: blob.length };
  }

  async *read(ns: string, digest: string): AsyncIterable<Uint8Array> {
    this.check();
    this.reads.push(digest);
    const blob = this.blobs.get(ns)?.get(digest);
    if (!blob) throw new NotFoundError(`content ${digest}: not found`);
    for (let i = 0; i < blob.length; i += 7) yield blob.subarray(i, i + 7);
  }

  async ingests(ns: string): Promise<Ingest[]> {
    this.check();
    return [...(this.ingesting.get(ns) ?? [])];
  }

  private check(): void {
    if (this.down) throw new UnavailableError('containerd at /fake.sock did not answer', { hint: 'check containerd_address' });
  }
}

export class FakeImages implements ImageClient {
  readonly records = new Map<string, ImageRecord[]>();
  down = false;

  async list(ns: string): Promise<ImageRecord[]> {
    if (this.down) throw new UnavailableError('containerd at /fake.sock did not answer images List', { hint: 'check containerd_address' });
    return [...(this.records.get(ns) ?? [])];
  }
}

export interface FakeImage {
  name: string;
  manifest: string;
  /** Layer blob digests (= diff IDs), bottom first. */
  layers: string[];
  chainIds: string[];
}

/**
 * Stores an image of plain-tar layers (`layers` are their bytes) under `name`
 * in `ns`; `finish` may annotate (sign) the manifest before it is stored.
 */
export function addImage(
  content: FakeContent,
  images: FakeImages,
  ns: string,
  name: string,
  layers: readonly Uint8Array[],
  finish: (manifest: ImageManifest) => ImageManifest = (m) => m,
): FakeImage {
  const digests = layers.map((l) => content.add(ns, l));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: digests } }));
  const configDigest = content.add(ns, config);
  const manifest = Buffer.from(
    JSON.stringify(finish({
      schemaVersion: 2,
      mediaType: MediaType.imageManifest,
      config: { mediaType: MediaType.imageConfig, digest: configDigest, size: config.length },
      layers: layers.map((l, i) => ({ mediaType: MediaType.layerTar, digest: digests[i]!, size: l.length })),
    })),
  );
  const manifestDigest = content.add(ns, manifest);
  const list = images.records.get(ns) ?? [];
  list.push({ name, target: { mediaType: MediaType.imageManifest, digest: manifestDigest, size: manifest.length } });
  images.records.set(ns, list);
  return { name, manifest: manifestDigest, layers: digests, chainIds: chainIds(digests) };
}
