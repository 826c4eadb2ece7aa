/**
 * A conversion's SHA-256 work — the blob digest, the diff ID, the image
 * digest and the dm-verity data-block digests — on a worker thread, so the
 * calling thread only inflates, parses and does I/O while the second core
 * hashes.
 *
 * Memory is bounded whatever the layer size: data reaches the worker through
 * a fixed ring of shared-memory slots (no copies in messages, no buffers
 * waiting for the garbage collector). The caller fills the next slot and
 * submits it; jobs run strictly in submission order; a caller that gets a
 * whole ring ahead waits for the oldest job (backpressure). Jobs are announced
 * and completed through Atomics on a shared counter pair, not messages, so a
 * job costs no allocation on either side.
 *
 * A worker takes ~40 ms to boot, more than hashing a small layer takes, so it
 * is started only when the work is big: by warm() (callers that know the size
 * call it early, so it boots while they go on), or when a data job finds the
 * ring full. Until then jobs wait in the ring; a result asked for before that
 * (a small layer) is computed in the calling thread, which then runs all
 * later jobs itself too.
 *
 * Results cannot depend on timing: one order of jobs, and a block digest is
 * the same whichever thread computes it. Block digests reach the caller in
 * job order, before the slot is reused.
 */
import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../core/errors.js';
import { SaltedDigest } from './verity/block-hash.js';
import { verityParams } from './verity/params.js';

/** Bytes per slot; dm-verity jobs must be whole data blocks. */
export const SLOT_BYTES = 1 << 20;
/** Slots in the ring: enough that the worker always has a queued job while the caller fills the next. */
const SLOTS = 4;
/** Data that fits the ring never needs the worker. */
export const RING_BYTES = SLOTS * SLOT_BYTES;
/** Streams are a 31-bit mask in a job. */
const MAX_STREAMS = 31;
const DIGEST_BYTES = verityParams.digestBytes;
const SLOT_DIGEST_BYTES = (SLOT_BYTES / verityParams.dataBlockBytes) * DIGEST_BYTES;

/** Indexes into the control words. */
export const Control = { SUBMITTED: 0, COMPLETED: 1 } as const;
/** Words of one job descriptor; one descriptor per slot. */
const Job = { OP: 0, LENGTH: 1, STREAMS: 2, BLOCK_DIGESTS: 3, WORDS: 4 } as const;
const Op = { HASH: 1, FINISH: 2 } as const;

/** The shared memory of a ring and the dm-verity salt: what the worker gets at start. */
export interface HashThreadData {
  control: SharedArrayBuffer;
  jobs: SharedArrayBuffer;
  slots: SharedArrayBuffer;
  blockDigests: SharedArrayBuffer;
  results: SharedArrayBuffer;
  salt: Uint8Array;
}

/**
 * Runs jobs of a ring: the worker's loop body, and the calling thread's when
 * it hashes without a worker. It holds the streams' hash states, so only one
 * thread may ever run the jobs of a ring.
 */
export class JobRunner {
  private readonly jobs: Int32Array;
  private readonly slots: Uint8Array;
  private readonly blockDigests: Uint8Array;
  private readonly results: Uint8Array;
  private readonly blocks: SaltedDigest;
  private readonly streams: Array<Hash | undefined> = [];

  constructor(data: HashThreadData) {
    this.jobs = new Int32Array(data.jobs);
    this.slots = new Uint8Array(data.slots);
    this.blockDigests = new Uint8Array(data.blockDigests);
    this.results = new Uint8Array(data.results);
    this.blocks = new SaltedDigest(data.salt);
  }

  run(job: number): void {
    const s = job % SLOTS;
    const at = s * Job.WORDS;
    const length = this.jobs[at + Job.LENGTH]!;
    const streams = this.jobs[at + Job.STREAMS]!;
    switch (this.jobs[at + Job.OP]) {
      case Op.HASH: {
        const bytes = this.slots.subarray(s * SLOT_BYTES, s * SLOT_BYTES + length);
        for (let id = 0; streams >>> id !== 0; id++) {
          if (streams & (1 << id)) (this.streams[id] ??= createHash('sha256')).update(bytes);
        }
        if (this.jobs[at + Job.BLOCK_DIGESTS]) this.blocks.digestBlocks(bytes, this.blockDigests, s * SLOT_DIGEST_BYTES);
        return;
      }
      case Op.FINISH: {
        // For FINISH the STREAMS word holds one stream id, not a mask.
        const digest = (this.streams[streams] ?? createHash('sha256')).digest();
        this.streams[streams] = undefined;
        this.results.set(digest, streams * DIGEST_BYTES);
        return;
      }
      default:
        throw new InternalError(`unknown hashing job ${this.jobs[at + Job.OP]}`);
    }
  }
}

/** A SHA-256 stream of the ring, fed by `submit` and finished by `digest`. */
export type StreamId = number;

export interface SubmitOptions {
  /** Streams whose digest covers these bytes, in this order. */
  streams?: readonly StreamId[];
  /** dm-verity digests of the bytes' data blocks (the length must be whole blocks), delivered in job order. */
  blockDigests?: (digests: Uint8Array) => void;
}

/** Where the jobs run: not decided yet (they wait in the ring), on the worker, or in the calling thread. */
export type HashMode = 'pending' | 'worker' | 'here';

// ES2023's lib has no Atomics.waitAsync (ES2024); Node has had it since 16.
type WaitAsync = (array: Int32Array, index: number, value: number) => { async: false; value: string } | { async: true; value: Promise<string> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

export class HashThread {
  /** The dm-verity salt of its block digests. */
  readonly salt: Uint8Array;
  private readonly data: HashThreadData;
  private readonly control: Int32Array;
  private readonly jobs: Int32Array;
  private readonly slots: Uint8Array;
  private readonly blockDigests: Uint8Array;
  private readonly results: Uint8Array;
  private readonly blocks: SaltedDigest;
  private thread: Worker | undefined;
  /** Runs the jobs in this thread once the mode is 'here'. */
  private runner: JobRunner | undefined;
  /** Block-digest receivers by slot, for jobs not yet delivered. */
  private readonly receivers: Array<((digests: Uint8Array) => void) | undefined> = new Array(SLOTS);
  private readonly digestLengths = new Int32Array(SLOTS);
  private submitted = 0;
  /** Jobs whose results went to the caller. */
  private delivered = 0;
  private streams = 0;
  private helped = 0;
  /** The last call's turn (see inTurn). */
  private turn: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;
  private closed = false;

  private constructor(salt: Uint8Array) {
    this.data = {
      control: new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT),
      jobs: new SharedArrayBuffer(SLOTS * Job.WORDS * Int32Array.BYTES_PER_ELEMENT),
      slots: new SharedArrayBuffer(SLOTS * SLOT_BYTES),
      blockDigests: new SharedArrayBuffer(SLOTS * SLOT_DIGEST_BYTES),
      results: new SharedArrayBuffer(MAX_STREAMS * DIGEST_BYTES),
      salt: Uint8Array.from(salt),
    };
    this.salt = this.data.salt;
    this.control = new Int32Array(this.data.control);
    this.jobs = new Int32Array(this.data.jobs);
    this.slots = new Uint8Array(this.data.slots);
    this.blockDigests = new Uint8Array(this.data.blockDigests);
    this.results = new Uint8Array(this.data.results);
    this.blocks = new SaltedDigest(salt);
  }

  /** A ring whose jobs wait until warm(), a full ring or a result decides where they run. */
  static start(salt: Uint8Array): HashThread {
    return new HashThread(salt);
  }

  get mode(): HashMode {
    return this.thread ? 'worker' : this.runner ? 'here' : 'pending';
  }

  /** Jobs whose block digests the calling thread computed because the worker was behind: how work was shared, never what it gave. */
  get blockJobsHashedHere(): number {
    return this.helped;
  }

  /** Starts the worker now (it boots while the caller goes on), unless the jobs already run here. */
  warm(): void {
    if (this.thread || this.runner || this.closed) return;
    // Runs from the compiled tree, where the worker sits next to this file as .js.
    const thread = new Worker(new URL('./hash-thread-worker.js', import.meta.url), {
      workerData: this.data,
      // It allocates little more than a digest per block: a small heap keeps its RSS small.
      resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
    });
    // Only a caller waiting for results keeps the process alive (see completeThrough()).
    thread.unref();
    thread.on('error', (err) => this.fail(err));
    thread.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`the hashing thread exited with code ${code}`));
    });
    this.thread = thread;
  }

  /** A new, empty SHA-256 stream. */
  stream(): StreamId {
    if (this.streams === MAX_STREAMS) throw new InternalError(`a hashing thread has at most ${MAX_STREAMS} streams`);
    return this.streams++;
  }

  /**
   * Hands `length` bytes to the hashing: waits for the next free slot, lets
   * `fill` write the bytes into it (synchronously), and submits the job.
   * Calls take turns in call order, so concurrent producers (the blob reader
   * and the tar consumer) cannot interleave inside a job.
   */
  submit(length: number, fill: (slot: Uint8Array) => void, options: SubmitOptions): Promise<void> {
    return this.inTurn(() => this.submitNow(length, fill, options));
  }

  /** Copies `bytes` (any length) through the ring into `streams`, in one turn. */
  update(streams: readonly StreamId[], bytes: Uint8Array): Promise<void> {
    return this.inTurn(async () => {
      for (let at = 0; at < bytes.length; at += SLOT_BYTES) {
        const piece = bytes.subarray(at, at + SLOT_BYTES);
        await this.submitNow(piece.length, (slot) => slot.set(piece), { streams });
      }
    });
  }

  /** The stream's digest over everything submitted to it; the stream starts again empty. */
  digest(stream: StreamId): Promise<Buffer> {
    return this.inTurn(async () => {
      this.checkStream(stream);
      if (this.mode === 'pending') this.runHere();
      const s = await this.nextSlot();
      this.receivers[s] = undefined;
      this.digestLengths[s] = 0;
      this.publish(s, Op.FINISH, 0, stream, 0);
      await this.completeThrough(this.submitted);
      return Buffer.from(this.results.subarray(stream * DIGEST_BYTES, (stream + 1) * DIGEST_BYTES));
    });
  }

  /** Waits until every job submitted so far is done and its block digests were delivered. */
  drain(): Promise<void> {
    return this.inTurn(async () => {
      if (this.mode === 'pending') this.runHere();
      await this.completeThrough(this.submitted);
    });
  }

  /** Stops the worker; safe at any time and twice. Jobs not yet done are dropped. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failure ??= new InternalError('the hashing thread was closed');
    Atomics.notify(this.control, Control.COMPLETED);
    await this.thread?.terminate();
  }

  /** Runs `step` after every earlier call's step; a failed step does not stop later ones from seeing the failure. */
  private inTurn<T>(step: () => Promise<T>): Promise<T> {
    const run = this.turn.then(() => {
      this.check();
      return step();
    });
    this.turn = run.catch(() => undefined);
    return run;
  }

  private async submitNow(length: number, fill: (slot: Uint8Array) => void, options: SubmitOptions): Promise<void> {
    if (length < 0 || length > SLOT_BYTES) throw new InternalError(`hashing thread: ${length} bytes do not fit a slot`);
    const receiver = options.blockDigests;
    if (receiver && length % verityParams.dataBlockBytes !== 0) {
      throw new InternalError(`hashing thread: block digests of ${length} bytes, not whole blocks`);
    }
    let mask = 0;
    for (const id of options.streams ?? []) mask |= 1 << this.checkStream(id);
    const s = await this.nextSlot();
    const bytes = this.slots.subarray(s * SLOT_BYTES, s * SLOT_BYTES + length);
    fill(bytes);
    this.receivers[s] = receiver;
    this.digestLengths[s] = receiver ? (length / verityParams.dataBlockBytes) * DIGEST_BYTES : 0;
    // A full ring means the worker is the slower side: rather than wait for it at the next
    // job, this thread computes this job's block digests (a digest is the same whoever computes it).
    const help = receiver !== undefined && this.thread !== undefined &&
      this.submitted - Atomics.load(this.control, Control.COMPLETED) >= SLOTS - 1;
    if (help) {
      this.blocks.digestBlocks(bytes, this.blockDigests, s * SLOT_DIGEST_BYTES);
      this.helped++;
    }
    this.publish(s, Op.HASH, length, mask, receiver && !help ? 1 : 0);
  }

  /** The slot of the next job, once the job that used it before is done. */
  private async nextSlot(): Promise<number> {
    // Data that overflows the ring while nothing runs the jobs is big enough for the worker.
    if (this.mode === 'pending' && this.submitted >= SLOTS) this.warm();
    await this.completeThrough(this.submitted - SLOTS + 1);
    return this.submitted % SLOTS;
  }

  private publish(s: number, op: number, length: number, streams: number, blockDigests: number): void {
    const at = s * Job.WORDS;
    this.jobs[at + Job.OP] = op;
    this.jobs[at + Job.LENGTH] = length;
    this.jobs[at + Job.STREAMS] = streams;
    this.jobs[at + Job.BLOCK_DIGESTS] = blockDigests;
    // The store orders the descriptor before the count the worker waits on.
    Atomics.store(this.control, Control.SUBMITTED, ++this.submitted);
    if (this.runner) this.runHere();
    else Atomics.notify(this.control, Control.SUBMITTED);
  }

  /** Runs every submitted job that is not done yet in this thread, and from now on every job. */
  private runHere(): void {
    const runner = (this.runner ??= new JobRunner(this.data));
    for (let job = Atomics.load(this.control, Control.COMPLETED); job < this.submitted; job++) {
      runner.run(job);
      Atomics.store(this.control, Control.COMPLETED, job + 1);
    }
  }

  /** Waits until jobs [0, count) are done, delivering their block digests in job order. */
  private async completeThrough(count: number): Promise<void> {
    for (;;) {
      const completed = Atomics.load(this.control, Control.COMPLETED);
      this.deliver(completed);
      if (completed >= count) return;
      this.check();
      if (!this.thread) throw new InternalError('hashing thread: waiting for jobs that nothing runs');
      const wait = waitAsync(this.control, Control.COMPLETED, completed);
      if (!wait.async) continue;
      // A pending waitAsync does not keep Node's event loop alive; the worker does.
      this.thread.ref();
      try {
        await wait.value;
      } finally {
        this.thread.unref();
      }
    }
  }

  private deliver(completed: number): void {
    for (; this.delivered < completed; this.delivered++) {
      const s = this.delivered % SLOTS;
      const receiver = this.receivers[s];
      if (!receiver) continue;
      this.receivers[s] = undefined;
      receiver(this.blockDigests.subarray(s * SLOT_DIGEST_BYTES, s * SLOT_DIGEST_BYTES + this.digestLengths[s]!));
    }
  }

  private checkStream(id: StreamId): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.streams) throw new InternalError(`hashing thread: no stream ${id}`);
    return id;
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  private fail(cause: unknown): void {
    this.failure ??= new InternalError('the SHA-256 hashing thread failed', { cause, hint: 'this is a bug; report it with the cause' });
    // Wakes a caller waiting in completeThrough(), which then sees the failure.
    Atomics.notify(this.control, Control.COMPLETED);
  }
}
