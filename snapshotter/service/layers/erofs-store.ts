/**
 * LayerStore on the layer pipeline: an upper directory is walked into the
 * EROFS builder (dir-source.ts), and the image and its dm-verity hash tree
 * are written by the layer pipeline's writeImageFiles; a layer blob goes
 * through the pipeline's convertLayer, as `integrityctl layer convert` does.
 * File data waits in a spill file inside the layer's own directory, so it
 * counts against the snapshotter's filesystem, not /tmp.
 */
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import { convertLayer } from '../../layer/convert.js';
import { SUPER_BLOCK, SUPER_OFFSET } from '../../layer/erofs/format.js';
import { ErofsBuilder } from '../../layer/erofs/writer.js';
import { writeImageFiles } from '../../layer/image-files.js';
import { DataSpill } from '../../layer/spill.js';
import type { CommittedLayer } from '../metadata/types.js';
import { feedDirectory, type XattrReader } from './dir-source.js';
import { LAYER_HASH_TREE, LAYER_IMAGE, type BlobLayer, type LayerStore } from './store.js';

export interface ErofsLayerStoreOptions {
  /** Reads a file's xattrs for the layer. */
  xattrs: XattrReader;
  logger: Logger;
}

export class ErofsLayerStore implements LayerStore {
  constructor(private readonly options: ErofsLayerStoreOptions) {}

  async commitDirectory(sourceDir: string, layerDir: string): Promise<CommittedLayer> {
    const log = this.options.logger.child({ layerDir });
    const spill = DataSpill.create(layerDir);
    try {
      const builder = new ErofsBuilder({ spill });
      const walk = await feedDirectory(sourceDir, builder, this.options.xattrs);
      builder.end();
      const image = join(layerDir, LAYER_IMAGE);
      const hashTree = join(layerDir, LAYER_HASH_TREE);
      const { rootHash } = await writeImageFiles(builder.finish(), { output: image, hashFile: hashTree });
      return { rootHash, usage: { size: await allocatedBytes([image, hashTree]), inodes: walk.inodes } };
    } finally {
      spill.close();
    }
  }

  async commitBlob(blob: AsyncIterable<Uint8Array>, layerDir: string, expectedDigest: string): Promise<BlobLayer> {
    const log = this.options.logger.child({ layerDir, digest: expectedDigest });
    const image = join(layerDir, LAYER_IMAGE);
    const hashTree = join(layerDir, LAYER_HASH_TREE);
    const result = await convertLayer(blob, {
      output: image,
      hashFile: hashTree,
      tempDir: layerDir,
      expectedDigest,
      onWarning: (message) => log.warn(message),
    });
    return {
      rootHash: result.rootHash,
      diffId: result.diffId,
      usage: { size: await allocatedBytes([image, hashTree]), inodes: await imageInodes(image) },
    };
  }

  async discard(layerDir: string): Promise<void> {
    await rm(join(layerDir, LAYER_IMAGE), { force: true });
    await rm(join(layerDir, LAYER_HASH_TREE), { force: true });
  }
}

/** The inode count an EROFS image's superblock records. */
async function imageInodes(image: string): Promise<number> {
  const file = await open(image, 'r');
  try {
    const field = Buffer.alloc(8);
    await file.read(field, 0, 8, SUPER_OFFSET + SUPER_BLOCK.fields.inos.offset);
    return Number(field.readBigUInt64LE());
  } finally {
    await file.close();
  }
}

async function allocatedBytes(paths: readonly string[]): Promise<number> {
  let bytes = 0;
  for (const path of paths) bytes += (await stat(path)).blocks * 512;
  return bytes;
}
