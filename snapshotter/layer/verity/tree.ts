/**
 * The dm-verity hash tree of data that arrives as a stream, with the bytes and
 * root hash of `veritysetup format` under the pinned parameters (params.ts).
 *
 * Memory stays flat whatever the data size: each level keeps only the hash
 * block it is filling. A full block is written at its final offset in the hash
 * file (layout.ts) and its digest moves one level up, so the levels fill
 * together in one pass and nothing is read back.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { AtomicFile } from '../../core/atomic-file.js';
import {
  FailedPreconditionError,
  InternalError,
  IntegrityError,
  InvalidArgumentError,
  NotFoundError,
  SystemCallError,
  isNotFound,
} from '../../core/errors.js';
import { SaltedDigest } from './block-hash.js';
import { HashThread, RING_BYTES, SLOT_BYTES } from '../hash-thread.js';
import { dataBlocksOf, verityTreeLayout, type VerityTreeLayout } from './layout.js';
import { checkSalt, pinnedSalt, saltToHex, verityParams } from './params.js';

const { dataBlockBytes, hashBlockBytes, digestBytes } = verityParams;

/** Bytes read from a file at once (verityOfFile). */
const READ_BYTES = 1 << 20;
/** Blocks hashed in-thread per call into the levels, bounding the digest scratch buffer. */
const SCRATCH_BLOCKS = 256;
const MAX_WORKERS = 64;

export interface VerityResult {
  /** Hex of the root hash, as veritysetup prints it and the kernel table takes it. */
  rootHash: string;
  /** Hex of the salt ('' for none). */
  salt: string;
  dataBlocks: number;
  /** Size of the hash tree in hash blocks (the hash file is hashBlocks × 4096 bytes). */
  hashBlocks: number;
  hashFile?: string;
}

export interface VerityTreeOptions {
  /** Total data size, known up front: it fixes the tree's shape. A positive multiple of 4096. */
  dataBytes: number;
  /** Default: the pinned salt. */
  salt?: Uint8Array;
  /** Where to write the hash tree (temp name, fsync, rename in finish()); omitted = root hash only. */
  hashFile?: string;
  /**
   * 0 or 1: data blocks are hashed in the calling thread. 2 or more: by a
   * HashThread, with the calling thread taking blocks whenever that thread
   * falls behind, which keeps two cores busy; more threads only added
   * messaging and memory (an isolate each) on the 2-core nodes this runs on.
   * The result is the same either way.
   */
  workers?: number;
}

export type VerityFileOptions = Omit<VerityTreeOptions, 'dataBytes'>;

export class VerityTreeBuilder {
  readonly layout: VerityTreeLayout;
  private readonly dataBytes: number;
  private readonly salt: Uint8Array;
  private readonly hasher: SaltedDigest;
  private readonly hashFile: string | undefined;
  private readonly output: AtomicFile | undefined;
  private readonly levels: HashLevels;
  private readonly workers: number;
  private received = 0;
  private state: 'open' | 'busy' | 'finished' | 'failed' = 'open';

  /** A block split across chunks waits here for its rest. */
  private readonly partial = new Uint8Array(dataBlockBytes);
  private partialBytes = 0;
  private readonly scratch = new Uint8Array(SCRATCH_BLOCKS * digestBytes);
  /** workers >= 2: started with the first data. */
  private thread: HashThread | undefined;

  constructor(options: VerityTreeOptions) {
    this.dataBytes = options.dataBytes;
    this.layout = verityTreeLayout(dataBlocksOf(options.dataBytes, 'dm-verity data'));
    this.salt = Uint8Array.from(checkSalt(options.salt ?? pinnedSalt()));
    this.workers = checkWorkers(options.workers ?? 0);
    this.hasher = new SaltedDigest(this.salt);
    this.hashFile = options.hashFile;
    this.output = options.hashFile === undefined ? undefined : createHashFile(options.hashFile);
    this.levels = new HashLevels(this.layout, this.hasher, this.output);
  }

  /**
   * Feeds the next data bytes. Chunks may have any size; the caller may reuse
   * `chunk` as soon as this returns or, if it returns a promise, once that
   * settles. Await each call before the next.
   */
  update(chunk: Uint8Array): void | Promise<void> {
    this.enter();
    try {
      this.count(chunk.length);
      if (this.workers < 2) {
        this.hashInThread(chunk);
        this.state = 'open';
        return;
      }
    } catch (err) {
      this.failNow(err);
    }
    return this.feedThread(chunk).then(
      () => {
        if (this.state === 'busy') this.state = 'open';
      },
      (err: unknown) => this.failNow(err),
    );
  }

  /**
   * Feeds the digests of the next data blocks instead of their bytes, for a
   * caller that hashed them elsewhere (HashThread) with this builder's salt:
   * sha256(salt || block) per block, in data order. Not after update() left
   * a partial block.
   */
  updateDigests(digests: Uint8Array): void {
    this.enter();
    try {
      const bytes = (digests.length / digestBytes) * dataBlockBytes;
      if (digests.length % digestBytes !== 0 || this.partialBytes > 0 || this.thread !== undefined) {
        throw new InternalError('dm-verity digests fed after a partial block or while a hashing thread has data');
      }
      this.count(bytes);
      this.levels.add(0, digests);
      this.state = 'open';
    } catch (err) {
      this.failNow(err);
    }
  }

  async finish(): Promise<VerityResult> {
    this.enter();
    try {
      if (this.received !== this.dataBytes) {
        throw new InvalidArgumentError(`dm-verity data ended after ${this.received} of the announced ${this.dataBytes} bytes`, {
          hint: 'the data source was truncated, or dataBytes was wrong',
        });
      }
      await this.thread?.drain();
      const root = this.levels.finish();
      await this.thread?.close();
      this.output?.commit();
      this.state = 'finished';
      return {
        rootHash: root.toString('hex'),
        salt: saltToHex(this.salt),
        dataBlocks: this.layout.dataBlocks,
        hashBlocks: this.layout.hashBlocks,
        ...(this.hashFile !== undefined ? { hashFile: this.hashFile } : {}),
      };
    } catch (err) {
      await this.abort();
      throw err;
    }
  }

  /** Stops the workers and drops the unfinished hash file. Safe at any time, also after finish(). */
  async abort(): Promise<void> {
    if (this.state !== 'finished') this.state = 'failed';
    this.output?.abort();
    await this.thread?.close();
  }

  private enter(): void {
    if (this.state !== 'open') {
      const why = {
        busy: 'called again before its previous update() settled',
        finished: 'has already finished',
        failed: 'failed or was aborted before',
      }[this.state];
      throw new FailedPreconditionError(`dm-verity builder ${why}`,
        { hint: 'await every update() before the next call; use a new builder per data stream' },
      );
    }
    this.state = 'busy';
  }

  private count(bytes: number): void {
    if (this.received + bytes > this.dataBytes) {
      throw new InvalidArgumentError(
        `dm-verity data overran its announced size of ${this.dataBytes} bytes (${this.received + bytes} bytes given)`,
        { hint: 'pass dataBytes equal to the exact size of the data that will be fed' },
      );
    }
    this.received += bytes;
  }

  /** Cleans up without waiting for the workers to stop, so the error reaches the caller at once. */
  private failNow(err: unknown): never {
    this.abort().catch(() => undefined);
    throw err;
  }

  private hashInThread(chunk: Uint8Array): void {
    for (const blocks of this.blockRuns(chunk, SCRATCH_BLOCKS * dataBlockBytes)) {
      this.hasher.digestBlocks(blocks, this.scratch);
      this.levels.add(0, this.scratch.subarray(0, (blocks.length / dataBlockBytes) * digestBytes));
    }
  }

  private async feedThread(chunk: Uint8Array): Promise<void> {
    let thread = this.thread;
    if (!thread) {
      thread = this.thread = HashThread.start(this.salt);
      if (this.dataBytes > RING_BYTES) thread.warm();
    }
    const toLevels = { blockDigests: (digests: Uint8Array) => this.levels.add(0, digests) };
    // Digests come back in job order, and jobs are submitted in data order.
    for (const blocks of this.blockRuns(chunk, SLOT_BYTES)) await thread.submit(blocks.length, (slot) => slot.set(blocks), toLevels);
  }

  /**
   * The data as runs of whole blocks, at most `limit` bytes each: first the
   * block completed from the previous chunk's rest, then this chunk's whole
   * blocks; its own rest waits in `partial`. Use each run before the next.
   */
  private *blockRuns(chunk: Uint8Array, limit: number): Generator<Uint8Array> {
    let at = 0;
    if (this.partialBytes > 0) {
      at = Math.min(chunk.length, dataBlockBytes - this.partialBytes);
      this.partial.set(chunk.subarray(0, at), this.partialBytes);
      this.partialBytes += at;
      if (this.partialBytes < dataBlockBytes) return;
      yield this.partial;
      this.partialBytes = 0;
    }
    const wholeEnd = at + Math.floor((chunk.length - at) / dataBlockBytes) * dataBlockBytes;
    for (let from = at; from < wholeEnd; from += limit) yield chunk.subarray(from, Math.min(wholeEnd, from + limit));
    this.partial.set(chunk.subarray(wholeEnd));
    this.partialBytes = chunk.length - wholeEnd;
  }
}

/**
 * The tree above the data: per level the hash block being filled. A full (or,
 * at the end, zero-padded) block goes to its place in the hash file and its
 * digest to the level above; the digest above the top level is the root.
 */
class HashLevels {
  private readonly blocks: Uint8Array[];
  /** Bytes of digests in each level's current block. */
  private readonly filled: number[];
  /** Blocks each level has emitted. */
  private readonly emitted: number[];
  private root: Buffer | undefined;

  constructor(
    private readonly layout: VerityTreeLayout,
    private readonly hasher: SaltedDigest,
    private readonly output: AtomicFile | undefined,
  ) {
    const levels = layout.levelBlocks.length;
    this.blocks = Array.from({ length: levels }, () => new Uint8Array(hashBlockBytes));
    this.filled = new Array<number>(levels).fill(0);
    this.emitted = new Array<number>(levels).fill(0);
  }

  add(level: number, digests: Uint8Array): void {
    const block = this.blocks[level];
    if (block === undefined) {
      if (this.root !== undefined || digests.length !== digestBytes) throw treeShapeError('more than one root digest');
      this.root = Buffer.from(digests);
      return;
    }
    for (let at = 0; at < digests.length; ) {
      const n = Math.min(digests.length - at, hashBlockBytes - this.filled[level]!);
      block.set(digests.subarray(at, at + n), this.filled[level]!);
      this.filled[level]! += n;
      at += n;
      if (this.filled[level] === hashBlockBytes) this.emit(level);
    }
  }

  /** Pads and emits every level's last block, bottom-up, so each digest reaches the level above in time. */
  finish(): Buffer {
    for (let level = 0; level < this.blocks.length; level++) {
      if (this.filled[level]! > 0) this.emit(level);
      if (this.emitted[level] !== this.layout.levelBlocks[level]) {
        throw treeShapeError(`level ${level} has ${this.emitted[level]} blocks, expected ${this.layout.levelBlocks[level]}`);
      }
    }
    if (this.root === undefined) throw treeShapeError('no root digest');
    return this.root;
  }

  private emit(level: number): void {
    const block = this.blocks[level]!;
    block.fill(0, this.filled[level]);
    const index = this.emitted[level]!++;
    this.output?.write(block, (this.layout.levelStart[level]! + index) * hashBlockBytes);
    this.filled[level] = 0;
    this.add(level + 1, this.hasher.digest(block));
  }
}

function treeShapeError(what: string): InternalError {
  return new InternalError(`dm-verity tree has the wrong shape: ${what}`, { hint: 'this is a bug; report it' });
}

/**
 * The tree of a whole file. The file must not change while it is read; its
 * size must be a positive multiple of 4096 (see dataBlocksOf for why).
 */
export async function verityOfFile(path: string, options: VerityFileOptions = {}): Promise<VerityResult> {
  const handle = await openDataFile(path);
  try {
    const info = await handle.stat();
    if (!info.isFile()) {
      throw new InvalidArgumentError(`${path} is not a regular file`, { hint: 'give the path of an image file' });
    }
    dataBlocksOf(info.size, path);
    if (options.hashFile !== undefined) await refuseSameFile(path, info, options.hashFile);
    const builder = new VerityTreeBuilder({ ...options, dataBytes: info.size });
    try {
      const buffer = Buffer.allocUnsafe(READ_BYTES);
      for (let position = 0; position < info.size; ) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, info.size - position), position);
        if (bytesRead === 0) {
          throw new FailedPreconditionError(`${path} shrank to ${position} bytes while it was hashed (was ${info.size})`, {
            hint: 'hash the file when nothing writes to it',
          });
        }
        await builder.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
      return await builder.finish();
    } catch (err) {
      await builder.abort();
      throw err;
    }
  } finally {
    await handle.close();
  }
}

async function openDataFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (err) {
    throw fileError(err, 'open', path, `data file ${path} does not exist`);
  }
}

function createHashFile(path: string): AtomicFile {
  try {
    return AtomicFile.create(path);
  } catch (err) {
    throw fileError(err, 'open', path, `cannot create hash file ${path}: its directory does not exist`);
  }
}

/** Writing the tree to the data file's own name would replace the data with its tree. */
async function refuseSameFile(dataPath: string, data: { dev: number; ino: number }, hashFile: string): Promise<void> {
  let existing;
  try {
    existing = await stat(hashFile);
  } catch (err) {
    if (isNotFound(err)) return;
    throw systemCallError(err, 'stat', hashFile);
  }
  if (existing.dev === data.dev && existing.ino === data.ino) {
    throw new InvalidArgumentError(`hash file ${hashFile} is the data file ${dataPath} itself`, {
      hint: 'write the hash tree to a separate file',
    });
  }
}

function fileError(err: unknown, syscall: string, path: string, notFound: string): IntegrityError {
  if (err instanceof IntegrityError) return err;
  if (isNotFound(err)) return new NotFoundError(notFound, { cause: err, hint: 'check the path' });
  return systemCallError(err, syscall, path);
}

function systemCallError(err: unknown, syscall: string, path: string): SystemCallError {
  const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
  return new SystemCallError(code, syscall, path, (err as Error).message, { cause: err });
}

function checkWorkers(workers: number): number {
  if (!Number.isSafeInteger(workers) || workers < 0 || workers > MAX_WORKERS) {
    throw new InvalidArgumentError(`workers must be a whole number from 0 to ${MAX_WORKERS}, not ${workers}`, {
      hint: '0 or 1 hashes in the calling thread; 2 or more adds one hashing thread',
    });
  }
  return workers;
}
