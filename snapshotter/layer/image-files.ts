/**
 * Writes a laid-out EROFS image and its dm-verity hash tree in one pass over
 * the image: each piece is rendered into a slot of a HashThread, written to
 * the image file from there, and hashed by the thread (the image's sha256 and
 * the dm-verity data-block digests) while the next piece is rendered. Both
 * files appear complete or not at all.
 */
import { fdatasync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { AtomicFile } from '../core/atomic-file.js';
import { InternalError, SystemCallError } from '../core/errors.js';
import type { ErofsImage } from './erofs/writer.js';
import { HashThread, RING_BYTES, SLOT_BYTES } from './hash-thread.js';
import { pinnedSalt } from './verity/params.js';
import { VerityTreeBuilder } from './verity/tree.js';

export interface ImageFilesOptions {
  /** The image file; written under a temporary name, fsynced and renamed. */
  output: string;
  /** The dm-verity hash tree; omitted = compute the root hash only. */
  hashFile?: string;
  /** dm-verity salt; default: the pinned contract salt. */
  salt?: Uint8Array;
  /** A running hashing thread started with the same salt (convertLayer passes its own); default: one of its own. */
  hashThread?: HashThread;
  /** Stops the writing; both files are dropped. */
  signal?: AbortSignal;
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
  const salt = options.salt ?? pinnedSalt();
  if (options.hashThread && !Buffer.from(options.hashThread.salt).equals(salt)) {
    throw new InternalError('writeImageFiles: the hashing thread was started with another dm-verity salt');
  }
  const thread = options.hashThread ?? HashThread.start(salt);
  // An image the ring cannot hold is worth the worker; a smaller one is hashed in this thread.
  if (image.bytes > RING_BYTES) thread.warm();
  let output: AtomicFile | undefined;
  let writeback: Writeback | undefined;
  let verity: VerityTreeBuilder | undefined;
  let treeWritten = false;
  try {
    output = AtomicFile.create(options.output);
    verity = new VerityTreeBuilder({ dataBytes: image.bytes, salt, ...(options.hashFile ? { hashFile: options.hashFile } : {}) });
    const tree = verity;
    const imageHash = thread.stream();
    const file = output;
    writeback = new Writeback(file.fd, options.output);
    const flushing = writeback;
    const hashing = { streams: [imageHash], blockDigests: (digests: Uint8Array) => tree.updateDigests(digests) };
    for (let start = 0; start < image.bytes; start += SLOT_BYTES) {
      options.signal?.throwIfAborted();
      await thread.submit(Math.min(SLOT_BYTES, image.bytes - start), (piece) => {
        image.render(start, piece);
        file.write(piece, start);
        flushing.wrote(piece.length);
      }, hashing);
    }
    await writeback.settle();
    const sha256 = (await thread.digest(imageHash)).toString('hex');
    options.signal?.throwIfAborted();
    const result = await verity.finish();
    verity = undefined;
    treeWritten = options.hashFile !== undefined;
    // The last look before the rename: an abort during finish() must not let the image appear.
    options.signal?.throwIfAborted();
    output.commit();
    return { bytes: image.bytes, sha256, rootHash: result.rootHash, salt: result.salt, dataBlocks: result.dataBlocks };
  } catch (err) {
    // A flush still running must not outlive the descriptor (its number could be reused by then).
    await writeback?.settle().catch(() => undefined);
    output?.abort();
    await verity?.abort();
    if (treeWritten) await rm(options.hashFile!, { force: true });
    throw err;
  } finally {
    if (!options.hashThread) await thread.close();
  }
}

/** Bytes written between two background flushes of the image. */
const WRITEBACK_BYTES = 32 << 20;

/**
 * Asks the kernel to write the image to disk while it is still being
 * produced (fdatasync on the thread pool, one at a time), so the fsync at
 * commit finds little left. On the development VM's disk the final fsync of a
 * 212 MB image took ~110 ms of serial time, ~15–45 ms this way; on slower
 * disks and bigger images it is seconds. On tmpfs it costs nothing.
 */
class Writeback {
  private inFlight: Promise<void> | undefined;
  private failure: NodeJS.ErrnoException | undefined;
  private unflushed = 0;

  constructor(
    private readonly fd: number,
    private readonly path: string,
  ) {}

  wrote(bytes: number): void {
    this.unflushed += bytes;
    if (this.unflushed < WRITEBACK_BYTES || this.inFlight) return;
    this.unflushed = 0;
    this.inFlight = new Promise((resolve) => {
      fdatasync(this.fd, (err) => {
        if (err) this.failure ??= err;
        this.inFlight = undefined;
        resolve();
      });
    });
  }

  /** Waits for the flush in flight; fails if any flush failed (the data may not be on disk). */
  async settle(): Promise<void> {
    await this.inFlight;
    if (this.failure) {
      throw new SystemCallError(this.failure.code ?? 'EIO', 'fdatasync', this.path, 'writing the image to disk failed', {
        cause: this.failure,
        hint: 'check the disk holding the output (space, I/O errors in dmesg)',
      });
    }
  }
}
