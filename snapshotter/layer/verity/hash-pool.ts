/**
 * Worker threads that compute data-block digests, so level 0 of the tree
 * (nearly all of the hashing) can use more than one core. The pool only
 * hashes; the caller keeps the order, so the tree cannot depend on which
 * worker answered first.
 */
import { Worker } from 'node:worker_threads';
import { InternalError } from '../../core/errors.js';

export interface HashWorkerData {
  salt: Uint8Array;
}

export interface HashRequest {
  id: number;
  buffer: ArrayBuffer;
  /** Bytes of `buffer` to hash, a multiple of the data block size. */
  length: number;
}

export interface HashReply {
  id: number;
  buffer: ArrayBuffer;
  digests: Uint8Array;
}

export interface HashBatchResult {
  /** The digests of the batch's blocks, in block order. */
  digests: Uint8Array;
  /** The batch buffer, handed back for reuse. */
  buffer: ArrayBuffer;
}

interface PoolWorker {
  thread: Worker;
  /** Batches sent and not yet answered. */
  busy: number;
}

interface Job {
  worker: PoolWorker;
  resolve: (result: HashBatchResult) => void;
  reject: (err: Error) => void;
}

export class HashPool {
  private readonly workers: PoolWorker[];
  private readonly jobs = new Map<number, Job>();
  private nextId = 0;
  private failure: InternalError | undefined;
  private closing = false;

  constructor(size: number, salt: Uint8Array) {
    this.workers = Array.from({ length: size }, () => this.spawn(salt));
  }

  /**
   * Digests of the blocks in the first `length` bytes of `buffer`. The buffer
   * is transferred to a worker (unusable here until the promise resolves).
   */
  hash(buffer: ArrayBuffer, length: number): Promise<HashBatchResult> {
    if (this.failure) return Promise.reject(this.failure);
    const worker = this.workers.reduce((best, w) => (w.busy < best.busy ? w : best));
    const id = this.nextId++;
    return new Promise<HashBatchResult>((resolve, reject) => {
      this.jobs.set(id, { worker, resolve, reject });
      // Idle workers are unref'd so a pool its owner forgot cannot keep the
      // process alive; a worker with work must, or the await would be dropped.
      if (worker.busy++ === 0) worker.thread.ref();
      const request: HashRequest = { id, buffer, length };
      worker.thread.postMessage(request, [buffer]);
    });
  }

  /** Stops the workers; queued and later batches are rejected rather than left pending forever. */
  async close(): Promise<void> {
    this.closing = true;
    this.failure ??= new InternalError('dm-verity hashing was stopped before all batches were hashed');
    this.rejectAll(this.failure);
    await Promise.all(this.workers.map((w) => w.thread.terminate()));
  }

  private spawn(salt: Uint8Array): PoolWorker {
    const workerData: HashWorkerData = { salt };
    // Tests and the CLI run from the compiled tree, where the worker sits next to this file as .js.
    const thread = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData });
    thread.unref();
    const worker: PoolWorker = { thread, busy: 0 };
    thread.on('message', (reply: HashReply) => this.settle(worker, reply));
    thread.on('error', (err) => this.fail(err));
    thread.on('exit', (code) => {
      if (!this.closing) this.fail(new Error(`exited with code ${code}`));
    });
    return worker;
  }

  private settle(worker: PoolWorker, reply: HashReply): void {
    const job = this.jobs.get(reply.id);
    if (!job) return;
    this.jobs.delete(reply.id);
    if (--worker.busy === 0) worker.thread.unref();
    job.resolve({ digests: reply.digests, buffer: reply.buffer });
  }

  private fail(cause: unknown): void {
    this.failure ??= new InternalError('a dm-verity hashing worker thread failed', {
      cause,
      hint: 'retry with workers: 0 (hashing in the calling thread); report the cause if it persists',
    });
    this.rejectAll(this.failure);
  }

  private rejectAll(err: Error): void {
    for (const job of this.jobs.values()) job.reject(err);
    this.jobs.clear();
    for (const w of this.workers) {
      w.busy = 0;
      w.thread.unref();
    }
  }
}
