/**
 * Writes a laid-out EROFS image and its dm-verity hash tree in one pass over
 * the image's chunks: the image file, its sha256 and the verity hasher are
 * fed from the same bytes. Both files appear complete or not at all.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { AtomicFile } from '../core/atomic-file.js';
import type { ErofsImage } from './erofs/writer.js';
import { VerityTreeBuilder } from './verity/tree.js';

export interface ImageFilesOptions {
  /** The image file; written under a temporary name, fsynced and renamed. */
  output: string;
  /** The dm-verity hash tree; omitted = compute the root hash only. */
  hashFile?: string;
  /** dm-verity salt; default: the pinned contract salt. */
  salt?: Uint8Array;
  /** Hashing threads for dm-verity level 0 (0 = in the calling thread). */
  workers?: number;
}

export interface ImageFiles {
  /** Size of the image in bytes. */
  bytes: number;
  /** sha256 (hex) of the image. */
  sha256: string;
  rootHash: string;
  salt: string;
  dataBlocks: number;
}

export async function writeImageFiles(image: ErofsImage, options: ImageFilesOptions): Promise<ImageFiles> {
  const output = AtomicFile.create(options.output);
  const verity = new VerityTreeBuilder({
    dataBytes: image.bytes,
    ...(options.salt ? { salt: options.salt } : {}),
    ...(options.hashFile ? { hashFile: options.hashFile } : {}),
    ...(options.workers !== undefined ? { workers: options.workers } : {}),
  });
  let treeWritten = false;
  try {
    const imageHash = createHash('sha256');
    let position = 0;
    for (const chunk of image.chunks()) {
      output.write(chunk, position);
      position += chunk.length;
      imageHash.update(chunk);
      await verity.update(chunk);
    }
    const tree = await verity.finish();
    treeWritten = true;
    output.commit();
    return { bytes: image.bytes, sha256: imageHash.digest('hex'), rootHash: tree.rootHash, salt: tree.salt, dataBlocks: tree.dataBlocks };
  } catch (err) {
    output.abort();
    if (!treeWritten) await verity.abort();
    else if (options.hashFile) await rm(options.hashFile, { force: true });
    throw err;
  }
}
