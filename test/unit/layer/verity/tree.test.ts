/**
 * The streaming builder against an obviously-correct in-memory tree, for any
 * chunking and any worker count. veritysetup itself is the oracle in
 * test/host/layer/verity; this reference only has to agree with it on the
 * shapes checked there.
 */
import test from 'ava';
import fc from 'fast-check';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../../../snapshotter/core/errors.js';
import { pinnedSalt } from '../../../../snapshotter/layer/verity/params.js';
import { VerityTreeBuilder, verityOfFile, type VerityResult } from '../../../../snapshotter/layer/verity/tree.js';

const BLOCK = 4096;

/** Whole tree in memory, level by level, then the levels concatenated top first. */
function referenceTree(data: Uint8Array, salt: Uint8Array): { rootHash: string; file: Buffer } {
  const digest = (block: Uint8Array) => createHash('sha256').update(salt).update(block).digest();
  const blocksOf = (bytes: Uint8Array) =>
    Array.from({ length: Math.ceil(bytes.length / BLOCK) }, (_, i) => bytes.subarray(i * BLOCK, (i + 1) * BLOCK));
  let below = blocksOf(data);
  const levels: Buffer[] = [];
  while (below.length > 1) {
    const digests = Buffer.concat(below.map(digest));
    const level = Buffer.alloc(Math.ceil(digests.length / BLOCK) * BLOCK);
    digests.copy(level);
    levels.push(level);
    below = blocksOf(level);
  }
  return { rootHash: digest(below[0]!).toString('hex'), file: Buffer.concat(levels.reverse()) };
}

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'verity-unit-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Feeds `data` cut at the given sizes (cycled), reusing one buffer as a careless caller might. */
async function build(data: Uint8Array, cuts: number[], options: { workers: number; salt?: Uint8Array; hashFile?: string }): Promise<VerityResult> {
  const builder = new VerityTreeBuilder({ dataBytes: data.length, ...options });
  const reused = new Uint8Array(Math.max(...cuts, 1));
  for (let at = 0, i = 0; at < data.length; i++) {
    const n = Math.min(cuts[i % cuts.length]!, data.length - at);
    reused.set(data.subarray(at, at + n));
    await builder.update(reused.subarray(0, n));
    reused.fill(0xa5);
    at += n;
  }
  return builder.finish();
}

// Enough random bytes for several 1 MiB worker batches plus a remainder.
const pool = randomBytes(6 * 1024 * 1024 + 5 * BLOCK);

test('one block: no hash levels, the root is the digest of the block', async (t) => {
  const data = pool.subarray(0, BLOCK);
  const hashFile = join(tempDir(t), 'tree');
  const result = await build(data, [BLOCK], { workers: 0, hashFile });
  t.is(result.rootHash, createHash('sha256').update(pinnedSalt()).update(data).digest('hex'));
  t.is(result.hashBlocks, 0);
  t.is(readFileSync(hashFile).length, 0);
});

test('result and hash file match the reference for any chunking and worker count', async (t) => {
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 700 }),
      fc.array(fc.oneof(fc.integer({ min: 1, max: 3 * BLOCK }), fc.integer({ min: 1, max: 3 * 1024 * 1024 })), {
        minLength: 1,
        maxLength: 8,
      }),
      fc.constantFrom(0, 1, 2, 3),
      fc.option(fc.uint8Array({ maxLength: 64 }), { nil: undefined }),
      async (blocks, cuts, workers, salt) => {
        const data = pool.subarray(0, blocks * BLOCK);
        const hashFile = join(dir, `tree-${run++}`);
        const result = await build(data, cuts, { workers, hashFile, ...(salt ? { salt } : {}) });
        const expected = referenceTree(data, salt ?? pinnedSalt());
        t.is(result.rootHash, expected.rootHash);
        t.true(readFileSync(hashFile).equals(expected.file), 'hash file bytes');
        t.is(result.hashBlocks * BLOCK, expected.file.length);
        t.is(result.dataBlocks, blocks);
        rmSync(hashFile);
      },
    ),
    { numRuns: 60 },
  );
});

test('many batches in flight: workers and chunking do not change the result', async (t) => {
  const data = pool.subarray(0, pool.length - BLOCK);
  const expected = referenceTree(data, pinnedSalt()).rootHash;
  for (const [workers, cuts] of [
    [0, [data.length]],
    [2, [65536]],
    [2, [1, 4095, 1024 * 1024 + 7]],
    [3, [3 * 1024 * 1024 + 1]],
  ] as const) {
    t.is((await build(data, [...cuts], { workers })).rootHash, expected, `workers ${workers}, cuts ${cuts.join(',')}`);
  }
});

test('more data than announced is refused and leaves no hash file', async (t) => {
  const dir = tempDir(t);
  for (const workers of [0, 2]) {
    const builder = new VerityTreeBuilder({ dataBytes: BLOCK, hashFile: join(dir, 'tree'), workers });
    await t.throwsAsync(async () => builder.update(pool.subarray(0, 2 * BLOCK)), { instanceOf: InvalidArgumentError });
    await t.throwsAsync(builder.finish(), { instanceOf: FailedPreconditionError });
  }
  t.deepEqual(readdirSync(dir), []);
});

test('less data than announced is refused at finish and leaves no hash file', async (t) => {
  const dir = tempDir(t);
  for (const workers of [0, 2]) {
    const builder = new VerityTreeBuilder({ dataBytes: 3 * BLOCK, hashFile: join(dir, 'tree'), workers });
    await builder.update(pool.subarray(0, 2 * BLOCK));
    const err = await t.throwsAsync(builder.finish(), { instanceOf: InvalidArgumentError });
    t.regex(err!.message, /ended after 8192 of the announced 12288 bytes/);
  }
  t.deepEqual(readdirSync(dir), []);
});

test('abort drops the unfinished hash file', async (t) => {
  const dir = tempDir(t);
  const builder = new VerityTreeBuilder({ dataBytes: 300 * BLOCK, hashFile: join(dir, 'tree'), workers: 2 });
  await builder.update(pool.subarray(0, 200 * BLOCK));
  t.is(readdirSync(dir).length, 1, 'the temporary file exists while building');
  await builder.abort();
  t.deepEqual(readdirSync(dir), []);
  await t.throwsAsync(async () => builder.update(pool.subarray(0, BLOCK)), { instanceOf: FailedPreconditionError });
});

test('abort while batches are in flight settles the pending update', async (t) => {
  const dir = tempDir(t);
  const builder = new VerityTreeBuilder({ dataBytes: pool.length, hashFile: join(dir, 'tree'), workers: 2 });
  const pending = builder.update(pool);
  await builder.abort();
  await t.throwsAsync(async () => pending);
  t.deepEqual(readdirSync(dir), []);
});

test('an update before the previous one settled is refused', async (t) => {
  const builder = new VerityTreeBuilder({ dataBytes: 2 * 1024 * 1024, workers: 2 });
  const first = builder.update(pool.subarray(0, 1024 * 1024));
  t.throws(() => builder.update(pool.subarray(0, BLOCK)), { instanceOf: FailedPreconditionError, message: /before its previous update/ });
  await first;
  await builder.abort();
});

test('options are checked up front', (t) => {
  t.throws(() => new VerityTreeBuilder({ dataBytes: 0 }), { instanceOf: InvalidArgumentError, message: /empty/ });
  t.throws(() => new VerityTreeBuilder({ dataBytes: BLOCK + 1 }), { instanceOf: InvalidArgumentError, message: /multiple/ });
  t.throws(() => new VerityTreeBuilder({ dataBytes: BLOCK, workers: -1 }), { instanceOf: InvalidArgumentError });
  t.throws(() => new VerityTreeBuilder({ dataBytes: BLOCK, workers: 2.5 }), { instanceOf: InvalidArgumentError });
  t.throws(() => new VerityTreeBuilder({ dataBytes: BLOCK, salt: new Uint8Array(257) }), { instanceOf: InvalidArgumentError });
  t.throws(() => new VerityTreeBuilder({ dataBytes: BLOCK, hashFile: '/nonexistent-dir/tree' }), { instanceOf: NotFoundError });
});

test('verityOfFile equals the streaming builder', async (t) => {
  const dir = tempDir(t);
  const data = pool.subarray(0, 1000 * BLOCK);
  writeFileSync(join(dir, 'image'), data);
  const expected = referenceTree(data, pinnedSalt());
  for (const workers of [0, 2]) {
    const result = await verityOfFile(join(dir, 'image'), { workers, hashFile: join(dir, 'tree') });
    t.deepEqual(result, {
      rootHash: expected.rootHash,
      salt: 'dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b',
      dataBlocks: 1000,
      hashBlocks: expected.file.length / BLOCK,
      hashFile: join(dir, 'tree'),
    });
    t.true(readFileSync(join(dir, 'tree')).equals(expected.file));
  }
});

test('verityOfFile refuses what it cannot hash, naming the file', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'ragged'), pool.subarray(0, BLOCK + 100));
  writeFileSync(join(dir, 'image'), pool.subarray(0, BLOCK));
  mkdirSync(join(dir, 'subdir'));
  await t.throwsAsync(verityOfFile(join(dir, 'missing')), { instanceOf: NotFoundError, message: /missing does not exist/ });
  await t.throwsAsync(verityOfFile(join(dir, 'subdir')), { instanceOf: InvalidArgumentError, message: /not a regular file/ });
  await t.throwsAsync(verityOfFile(join(dir, 'empty')), { instanceOf: InvalidArgumentError, message: /empty is empty/ });
  await t.throwsAsync(verityOfFile(join(dir, 'ragged')), { instanceOf: InvalidArgumentError, message: /ragged is 4196 bytes/ });
  await t.throwsAsync(verityOfFile(join(dir, 'image'), { hashFile: join(dir, 'image') }), {
    instanceOf: InvalidArgumentError,
    message: /is the data file/,
  });
  t.true(readFileSync(join(dir, 'image')).equals(pool.subarray(0, BLOCK)), 'the data file is untouched');
  t.deepEqual(readdirSync(dir).sort(), ['empty', 'image', 'ragged', 'subdir']);
});
