/**
 * Where committed layers come from and where their files live: every
 * committed snapshot directory holds one EROFS image and its dm-verity hash
 * tree. The snapshotter depends on this seam only; tests without the layer
 * pipeline can stand in a fake.
 */
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import { syncDirectory } from '../../core/atomic-file.js';
import type { CommittedLayer } from '../metadata/types.js';

export interface BlobLayer extends CommittedLayer {
  /** `sha256:<hex>` of the uncompressed layer tar. */
  diffId: string;
}

export const LAYER_IMAGE = 'layer.erofs';
export const LAYER_HASH_TREE = 'layer.verity';

export interface LayerStore {
  /**
   * Builds `layerDir`/layer.erofs and layer.verity from the tree at
   * `sourceDir` (an overlay upper dir). Files appear complete or not at all.
   */
  commitDirectory(sourceDir: string, layerDir: string): Promise<CommittedLayer>;
  /**
   * Builds `layerDir`/layer.erofs and layer.verity from an OCI layer blob
   * (tar, gzip or zstd), byte for byte what `integrityctl layer convert` and
   * Delivery Kit make of it. The blob must have `expectedDigest`; the
   * result's `diffId` is the digest of its uncompressed tar.
   */
  commitBlob(blob: AsyncIterable<Uint8Array>, layerDir: string, expectedDigest: string): Promise<BlobLayer>;
  /** Drops what commitDirectory wrote into `layerDir` (its commit failed after all). */
  discard(layerDir: string): Promise<void>;
}

/**
 * Moves a layer's files from the directory they were built in to the
 * snapshot's (one file system), durably: the Commit that follows records them.
 */
export async function moveLayerFiles(fromDir: string, toDir: string): Promise<void> {
  for (const name of [LAYER_IMAGE, LAYER_HASH_TREE]) await rename(join(fromDir, name), join(toDir, name));
  syncDirectory(toDir);
}

/** Where a built layer's bytes came from: a blob (from the registry or containerd's content store), or containerd's unpack. */
export const LAYER_SOURCES = ['registry', 'containerd', 'upper'] as const;
export type LayerSourceKind = (typeof LAYER_SOURCES)[number];
