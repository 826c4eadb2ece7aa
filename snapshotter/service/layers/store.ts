/**
 * Where committed layers come from and where their files live: every
 * committed snapshot directory holds one EROFS image and its dm-verity hash
 * tree. The snapshotter depends on this seam only; tests without the layer
 * pipeline can stand in a fake.
 */
import type { CommittedLayer } from '../metadata/types.js';

export const LAYER_IMAGE = 'layer.erofs';
export const LAYER_HASH_TREE = 'layer.verity';

export interface LayerStore {
  /**
   * Builds `layerDir`/layer.erofs and layer.verity from the tree at
   * `sourceDir` (an overlay upper dir). Files appear complete or not at all.
   */
  commitDirectory(sourceDir: string, layerDir: string): Promise<CommittedLayer>;
  /** Drops what commitDirectory wrote into `layerDir` (its commit failed after all). */
  discard(layerDir: string): Promise<void>;
}
