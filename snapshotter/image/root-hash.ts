/**
 * dm-verity root hashes of an image, computed with the layer pipeline the node
 * uses: one per layer (over the layer's EROFS) and one over the flattened image
 * (Delivery Kit's manifest value, see oci/flatten.ts). The EROFS files are
 * written to a private temporary directory and removed; only the hashes are kept.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertLayer, type ConvertResult } from '../layer/convert.js';
import { flattenLayers } from '../oci/flatten.js';
import type { ImageSource } from '../oci/image-source.js';
import type { Descriptor } from '../oci/types.js';

export interface RootHashOptions {
  /** Parent of the temporary directory (default: the OS's). Needs room for one uncompressed layer's EROFS. */
  tempDir?: string;
  /** Bytes of blob read so far by this computation. */
  onProgress?: (bytesRead: number) => void;
}

/**
 * Options for every root hash of `image` in turn, with one progress over all
 * of them: each call gives the next computation's, which counts on from where
 * the previous one stopped, out of every layer read twice (alone, then
 * flattened).
 */
export function imageRootHashSteps(
  image: ImageSource,
  options: { tempDir?: string; onProgress?: (done: number, total: number) => void },
): () => RootHashOptions {
  const total = 2 * image.manifest.layers.reduce((sum, l) => sum + l.size, 0);
  let done = 0;
  return () => {
    const start = done;
    return {
      ...(options.tempDir ? { tempDir: options.tempDir } : {}),
      onProgress: (bytes) => options.onProgress?.((done = start + bytes), total),
    };
  };
}

/** Converts one layer blob; the result's inputDigest and diffId describe what was read. */
export function layerRootHash(image: ImageSource, layer: Descriptor, options: RootHashOptions = {}): Promise<ConvertResult> {
  return convertToScratch(image.streamBlob(layer), options);
}

/** The flattened image's root hash: every layer blob is read once more, top first. */
export async function imageRootHash(image: ImageSource, options: RootHashOptions = {}): Promise<string> {
  let before = 0;
  let current = 0;
  const layers = image.manifest.layers.map((layer) => async function* () {
    before += current;
    current = 0;
    for await (const chunk of image.streamBlob(layer)) {
      current += chunk.length;
      options.onProgress?.(before + current);
      yield chunk;
    }
  });
  const result = await convertToScratch(flattenLayers(layers), { ...options, onProgress: undefined });
  return result.rootHash;
}

async function convertToScratch(input: AsyncIterable<Uint8Array>, options: RootHashOptions): Promise<ConvertResult> {
  const dir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'integrity-roothash-'));
  try {
    return await convertLayer(input, {
      output: join(dir, 'layer.erofs'),
      tempDir: dir,
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
