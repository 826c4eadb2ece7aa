/**
 * The hashing thread against node:crypto in this thread: stream digests and
 * dm-verity block digests for any cut of the data and any interleaving of
 * streams, whichever side (worker or caller) ends up hashing a job's blocks.
 */
import test from 'ava';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { InternalError } from '../../../snapshotter/core/errors.js';
import { HashThread, SLOT_BYTES } from '../../../snapshotter/layer/hash-thread.js';
import { SaltedDigest } from '../../../snapshotter/layer/verity/block-hash.js';
import { pinnedSalt } from '../../../snapshotter/layer/verity/params.js';
import { VerityTreeBuilder } from '../../../snapshotter/layer/verity/tree.js';

const BLOCK = 4096;
const pool = randomBytes(3 * SLOT_BYTES + 12_345);
const sha256 = (...parts: Uint8Array[]) => parts.reduce((h, p) => h.update(p), createHash('sha256')).digest('hex');

function started(t: { teardown(fn: () => Promise<void>): void }, salt = pinnedSalt()): HashThread {
  const thread = HashThread.start(salt);
  t.teardown(() => thread.close());
  return thread;
}

for (const where of ['on the worker', 'in the calling thread'] as const) test(`stream digests equal node:crypto for any cut and interleaving of two streams, ${where}`, async (t) => {
  const thread = started(t);
  // warm() starts the worker; a first result asked for while nothing ran yet keeps every job here.
  if (where === 'on the worker') thread.warm();
  else await thread.digest(thread.stream());
  // digest() empties a stream, so each run starts from empty streams.
  const ids = [thread.stream(), thread.stream()];
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ stream: fc.integer({ min: 0, max: 1 }), length: fc.integer({ min: 0, max: SLOT_BYTES + 100 }) }), { maxLength: 12 }),
      async (writes) => {
        const fed: Uint8Array[][] = [[], []];
        let at = 0;
        // Not awaited one by one: concurrent producers must take turns.
        await Promise.all(writes.map(({ stream, length }) => {
          const bytes = pool.subarray(at % 1000, (at % 1000) + length);
          at += 7;
          fed[stream]!.push(bytes);
          return thread.update([ids[stream]!], bytes);
        }));
        for (const s of [0, 1]) t.is((await thread.digest(ids[s]!)).toString('hex'), sha256(...fed[s]!), `stream ${s}`);
      },
    ),
    { numRuns: 15 },
  );
  t.is(thread.mode, where === 'on the worker' ? 'worker' : 'here');
});

test('small work never starts the worker; data that overflows the ring does', async (t) => {
  const small = started(t);
  const s = small.stream();
  await small.update([s], pool.subarray(0, 3 * SLOT_BYTES));
  t.is(small.mode, 'pending', 'jobs wait in the ring');
  t.is((await small.digest(s)).toString('hex'), sha256(pool.subarray(0, 3 * SLOT_BYTES)));
  t.is(small.mode, 'here');
  small.warm();
  t.is(small.mode, 'here', 'once jobs ran here, they stay here');
  await small.update([s], pool.subarray(0, 5 * SLOT_BYTES / 2));
  t.is((await small.digest(s)).toString('hex'), sha256(pool.subarray(0, 5 * SLOT_BYTES / 2)));

  const big = started(t);
  const b = big.stream();
  await big.update([b], pool.subarray(0, 3 * SLOT_BYTES + 12_345));
  t.is(big.mode, 'pending');
  await big.update([b], pool.subarray(0, 2 * SLOT_BYTES));
  t.is(big.mode, 'worker', 'the fifth job found the ring full');
  t.is((await big.digest(b)).toString('hex'), sha256(pool.subarray(0, 3 * SLOT_BYTES + 12_345), pool.subarray(0, 2 * SLOT_BYTES)));
});

test('one job can feed several streams, and a finished stream starts again empty', async (t) => {
  const thread = started(t);
  const [a, b] = [thread.stream(), thread.stream()];
  await thread.submit(100, (slot) => slot.set(pool.subarray(0, 100)), { streams: [a, b] });
  t.is((await thread.digest(a)).toString('hex'), sha256(pool.subarray(0, 100)));
  t.is((await thread.digest(b)).toString('hex'), sha256(pool.subarray(0, 100)));
  t.is((await thread.digest(a)).toString('hex'), sha256());
});

test('block digests arrive in job order and equal sha256(salt || block), whichever thread hashed them', async (t) => {
  const salt = randomBytes(32);
  const thread = started(t, salt);
  thread.warm();
  const reference = new SaltedDigest(salt);
  const data = pool.subarray(0, 3 * SLOT_BYTES);
  const expected = new Uint8Array((data.length / BLOCK) * 32);
  reference.digestBlocks(data, expected);
  const received: Uint8Array[] = [];
  // Forty jobs queued at once fill the ring, so this thread hashes some of them itself.
  const jobs = Array.from({ length: 40 }, (_, i) => {
    const length = [SLOT_BYTES, BLOCK, 5 * BLOCK][i % 3]!;
    const from = (i * 3 * BLOCK) % (data.length - length);
    return { from, length };
  });
  await Promise.all(jobs.map(({ from, length }) =>
    thread.submit(length, (slot) => slot.set(data.subarray(from, from + length)), { blockDigests: (d) => received.push(Uint8Array.from(d)) })));
  await thread.drain();
  t.is(received.length, jobs.length);
  jobs.forEach(({ from, length }, i) => {
    t.deepEqual(Buffer.from(received[i]!), Buffer.from(expected.subarray((from / BLOCK) * 32, ((from + length) / BLOCK) * 32)), `job ${i}`);
  });
  t.true(thread.blockJobsHashedHere > 0 && thread.blockJobsHashedHere < jobs.length, `${thread.blockJobsHashedHere} of ${jobs.length} jobs hashed by the caller`);
});

test('block digests through the thread build the same dm-verity tree as update() in one thread', async (t) => {
  const thread = started(t);
  thread.warm();
  const data = pool.subarray(0, 2 * SLOT_BYTES + 7 * BLOCK);
  const inThread = new VerityTreeBuilder({ dataBytes: data.length, workers: 0 });
  await inThread.update(data);
  const viaThread = new VerityTreeBuilder({ dataBytes: data.length });
  for (let at = 0; at < data.length; at += SLOT_BYTES) {
    const piece = data.subarray(at, at + SLOT_BYTES);
    await thread.submit(piece.length, (slot) => slot.set(piece), { blockDigests: (d) => viaThread.updateDigests(d) });
  }
  await thread.drain();
  t.deepEqual(await viaThread.finish(), await inThread.finish());
});

test('misuse is refused: oversized jobs, partial blocks, unknown streams', async (t) => {
  const thread = started(t);
  await t.throwsAsync(thread.submit(SLOT_BYTES + 1, () => undefined, {}), { instanceOf: InternalError });
  await t.throwsAsync(thread.submit(100, () => undefined, { blockDigests: () => undefined }), { instanceOf: InternalError, message: /whole blocks/ });
  await t.throwsAsync(thread.digest(5), { instanceOf: InternalError, message: /no stream 5/ });
  // The thread still works after refused calls.
  const s = thread.stream();
  await thread.update([s], pool.subarray(0, 10));
  t.is((await thread.digest(s)).toString('hex'), sha256(pool.subarray(0, 10)));
});

test('close() settles callers waiting for a slot, and later calls fail', async (t) => {
  const thread = HashThread.start(pinnedSalt());
  const s = thread.stream();
  const pending = Promise.allSettled(Array.from({ length: 12 }, () => thread.update([s], pool.subarray(0, SLOT_BYTES))));
  await thread.close();
  const results = await pending;
  t.true(results.some((r) => r.status === 'rejected'), 'some updates were still waiting and were rejected');
  await t.throwsAsync(thread.digest(s), { instanceOf: InternalError, message: /closed/ });
  await thread.close();
});
