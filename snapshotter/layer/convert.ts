/**
 * The layer pipeline: an OCI layer (tar, tar+gzip or tar+zstd) → one EROFS
 * image file + its dm-verity hash tree, in one pass over the input.
 *
 * Phase 1 streams the input through decompression and the tar parser into the
 * EROFS tree; file data goes to one spill file, as mkfs.erofs does with its
 * "diskbuf" (the image places data in directory order, not tar order, so it
 * cannot be written before the whole tree is known). Phase 2 lays the image
 * out in memory (metadata only). Phase 3 emits the image front to back, feeding
 * the output file, its sha256 and the dm-verity hasher from the same chunks.
 */
import { createHash } from 'node:crypto';
import { IntegrityViolationError } from '../core/errors.js';
import { decompressLayer } from './compression.js';
import { DataSpill } from './spill.js';
import { TarParser, type TarWarning } from './tar/reader.js';
import { DELIVERY_KIT_BUILD_TIME, ErofsBuilder } from './erofs/writer.js';
import { writeImageFiles, type ImageFiles } from './image-files.js';

export interface ConvertOptions {
  /** Path of the EROFS image to write; written under a temporary name and renamed when complete. */
  output: string;
  /** Where to write the dm-verity hash tree; omitted = compute the root hash only. */
  hashFile?: string;
  /** Directory for the spill file; defaults to the output's directory's filesystem via os.tmpdir(). */
  tempDir?: string;
  /** EROFS build time (seconds); every inode's mtime. Default: Delivery Kit's fixed time. */
  buildTime?: number;
  /** dm-verity salt; default: the pinned contract salt. */
  salt?: Uint8Array;
  /** Hashing threads for dm-verity level 0 (0 = in the calling thread). */
  workers?: number;
  /** `sha256:<hex>` the input bytes must have; checked before anything is renamed into place. */
  expectedDigest?: string;
  onProgress?: (bytesRead: number) => void;
  onWarning?: (message: string) => void;
}

export interface ConvertResult extends ImageFiles {
  erofs: string;
  hashFile: string | undefined;
  /** `sha256:<hex>` of the input as read (the layer blob digest). */
  inputDigest: string;
  /** `sha256:<hex>` of the uncompressed tar (the layer's OCI diff ID). */
  diffId: string;
}

export type LayerInput = AsyncIterable<Uint8Array>;

export async function convertLayer(input: LayerInput, options: ConvertOptions): Promise<ConvertResult> {
  const spill = DataSpill.create(options.tempDir);
  try {
    const { builder, inputDigest, diffId } = await parseLayer(input, spill, options);
    if (options.expectedDigest !== undefined && options.expectedDigest !== inputDigest) {
      throw new IntegrityViolationError(
        `layer digest mismatch: expected ${options.expectedDigest}, read ${inputDigest}`,
        { hint: 'the blob was altered or truncated in storage or transit; fetch it again' },
      );
    }
    const files = await writeImageFiles(builder.finish(), options);
    return { erofs: options.output, ...files, hashFile: options.hashFile, inputDigest, diffId };
  } finally {
    spill.close();
  }
}

async function parseLayer(input: LayerInput, spill: DataSpill, options: ConvertOptions) {
  const builder = new ErofsBuilder({ buildTime: options.buildTime ?? DELIVERY_KIT_BUILD_TIME, spill });
  const warn = options.onWarning;
  const parser = new TarParser(builder, {
    onVolumeLabel: (label) => builder.volumeLabel(label),
    ...(warn ? { onWarning: (w: TarWarning) => warn(`${w.message} (offset ${w.offset})`) } : {}),
  });
  const inputHash = createHash('sha256');
  const tarHash = createHash('sha256');
  let bytesRead = 0;
  async function* counted(): AsyncIterable<Uint8Array> {
    for await (const chunk of input) {
      inputHash.update(chunk);
      bytesRead += chunk.length;
      options.onProgress?.(bytesRead);
      yield chunk;
    }
  }
  for await (const chunk of decompressLayer(counted())) {
    tarHash.update(chunk);
    parser.write(chunk);
  }
  parser.end();
  return { builder, inputDigest: `sha256:${inputHash.digest('hex')}`, diffId: `sha256:${tarHash.digest('hex')}` };
}
