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
 *
 * All SHA-256 work (blob digest, diff ID, image digest, dm-verity) runs on one
 * HashThread, so this thread only inflates, parses and does I/O.
 */
import { IntegrityViolationError, InvalidArgumentError } from '../core/errors.js';
import { decompressLayer } from './compression.js';
import { HashThread, type StreamId } from './hash-thread.js';
import { DataSpill } from './spill.js';
import { TarParser, type TarWarning } from './tar/reader.js';
import { DELIVERY_KIT_BUILD_TIME, ErofsBuilder } from './erofs/writer.js';
import { writeImageFiles, type ImageFiles } from './image-files.js';
import { pinnedSalt } from './verity/params.js';

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
  /** `sha256:<hex>` the input bytes must have; checked before anything is renamed into place. */
  expectedDigest?: string;
  /**
   * Compute `inputDigest` and `diffId` (default true): a SHA-256 pass over the
   * blob and one over the tar, ~10% of a conversion's CPU. A caller that
   * reports neither (the CLI) passes false. `expectedDigest` needs them.
   */
  layerDigests?: boolean;
  /**
   * Stops the conversion: a read waiting for input fails at once, the promise
   * rejects with the signal's reason, and no file is left (no image, no hash
   * file, no temporary).
   */
  signal?: AbortSignal;
  onProgress?: (bytesRead: number) => void;
  onWarning?: (message: string) => void;
}

/** What every conversion gives. */
export interface ConvertedImage extends ImageFiles {
  erofs: string;
  hashFile: string | undefined;
}

export interface ConvertResult extends ConvertedImage {
  /** `sha256:<hex>` of the input as read (the layer blob digest). */
  inputDigest: string;
  /** `sha256:<hex>` of the uncompressed tar (the layer's OCI diff ID). */
  diffId: string;
}

export type LayerInput = AsyncIterable<Uint8Array>;

/**
 * From this much input on, the hashing worker (~40 ms to start, on the other
 * core) pays for itself; smaller layers are hashed in this thread. Started
 * here, it boots while the layer is parsed rather than when the image is written.
 */
const WORKER_FROM_BYTES = 256 << 10;

export function convertLayer(input: LayerInput, options: ConvertOptions & { layerDigests: false }): Promise<ConvertedImage>;
export function convertLayer(input: LayerInput, options: ConvertOptions): Promise<ConvertResult>;
export async function convertLayer(input: LayerInput, options: ConvertOptions): Promise<ConvertedImage | ConvertResult> {
  options.signal?.throwIfAborted();
  if (options.layerDigests === false && options.expectedDigest !== undefined) {
    throw new InvalidArgumentError('expectedDigest needs the layer digests', { hint: 'do not pass layerDigests: false with expectedDigest' });
  }
  const salt = options.salt ?? pinnedSalt();
  const spill = DataSpill.create(options.tempDir);
  const hashThread = HashThread.start(salt);
  try {
    const { builder, digests } = await parseLayer(input, spill, hashThread, options);
    if (options.expectedDigest !== undefined && options.expectedDigest !== digests?.inputDigest) {
      throw new IntegrityViolationError(
        `layer digest mismatch: expected ${options.expectedDigest}, read ${digests?.inputDigest}`,
        { hint: 'the blob was altered or truncated in storage or transit; fetch it again' },
      );
    }
    options.signal?.throwIfAborted();
    const files = await writeImageFiles(builder.finish(), { ...options, salt, hashThread });
    return { erofs: options.output, ...files, hashFile: options.hashFile, ...digests };
  } finally {
    spill.close();
    await hashThread.close();
  }
}

async function parseLayer(input: LayerInput, spill: DataSpill, hashThread: HashThread, options: ConvertOptions) {
  const builder = new ErofsBuilder({ buildTime: options.buildTime ?? DELIVERY_KIT_BUILD_TIME, spill });
  const warn = options.onWarning;
  const parser = new TarParser(builder, {
    onVolumeLabel: (label) => builder.volumeLabel(label),
    ...(warn ? { onWarning: (w: TarWarning) => warn(`${w.message} (offset ${w.offset})`) } : {}),
  });
  const hashes = options.layerDigests === false ? undefined : { input: hashThread.stream(), tar: hashThread.stream() };
  let bytesRead = 0;
  async function* counted(): AsyncIterable<Uint8Array> {
    for await (const chunk of untilAborted(input, options.signal)) {
      bytesRead += chunk.length;
      if (bytesRead >= WORKER_FROM_BYTES) hashThread.warm();
      if (hashes) await hashThread.update([hashes.input], chunk);
      options.onProgress?.(bytesRead);
      yield chunk;
    }
  }
  for await (const chunk of decompressLayer(counted())) {
    if (hashes) await hashThread.update([hashes.tar], chunk);
    parser.write(chunk);
  }
  parser.end();
  const digests = hashes && { inputDigest: await digestOf(hashThread, hashes.input), diffId: await digestOf(hashThread, hashes.tar) };
  return { builder, digests };
}

async function digestOf(hashThread: HashThread, stream: StreamId): Promise<string> {
  return `sha256:${(await hashThread.digest(stream)).toString('hex')}`;
}

/** The input's chunks until `signal` aborts; a read still waiting for data then fails at once. */
async function* untilAborted(input: LayerInput, signal: AbortSignal | undefined): AsyncGenerator<Uint8Array, void, undefined> {
  if (!signal) return yield* input;
  const iterator = input[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      signal.throwIfAborted();
      const next = await abortable(iterator.next(), signal);
      if (next.done) {
        finished = true;
        return;
      }
      yield next.value;
    }
  } finally {
    // Not awaited after an abort: a source still inside next() may not answer return() until it has data.
    if (!finished) {
      const closing = iterator.return?.();
      if (signal.aborted) closing?.catch(() => undefined);
      else await closing;
    }
  }
}

/**
 * `promise`, or the signal's reason as soon as it aborts. Not Promise.race
 * with one long-lived "aborted" promise: every race would add a reaction to
 * it that holds its chunk until the end.
 */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    // Starting `promise` may itself have aborted (the source's own code runs in next()).
    if (signal.aborted) onAbort();
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
