/**
 * veritysetup is the oracle: for the same data and salt our root hash and our
 * hash file must equal its output byte for byte, and we refuse exactly the
 * inputs it cannot or should not hash.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import { verityOfFile } from '../../../../snapshotter/layer/verity/tree.js';
import { veritysetupFormat, veritysetupMissing } from '../../../support/veritysetup.js';

const BLOCK = 4096;
const missing = veritysetupMissing();
const oracleTest = missing ? test.skip : test.serial;
if (missing) test('veritysetup oracle', (t) => t.pass(`skipped: ${missing}`));

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'verity-host-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function compareWithVeritysetup(
  t: { is(a: unknown, b: unknown, m?: string): void; true(v: boolean, m?: string): void },
  data: string,
  dir: string,
  salt?: string,
): Promise<void> {
  const oracle = await veritysetupFormat(data, join(dir, 'oracle.hash'), salt);
  t.is(oracle.status, 0, oracle.output);
  for (const workers of [0, 2]) {
    const ours = await verityOfFile(data, {
      workers,
      hashFile: join(dir, 'ours.hash'),
      ...(salt !== undefined ? { salt: salt === '-' ? new Uint8Array(0) : Buffer.from(salt, 'hex') } : {}),
    });
    t.is(ours.rootHash, oracle.rootHash, `root hash, workers ${workers}`);
    t.true(readFileSync(join(dir, 'ours.hash')).equals(readFileSync(join(dir, 'oracle.hash'))), `hash file bytes, workers ${workers}`);
  }
}

for (const blocks of [1, 2, 127, 128, 129, 16384, 16385]) {
  oracleTest(`${blocks} data blocks: root hash and hash file equal veritysetup's`, async (t) => {
    const dir = tempDir(t);
    const data = join(dir, 'data');
    writeFileSync(data, randomBytes(blocks * BLOCK));
    await compareWithVeritysetup(t, data, dir);
  });
}

oracleTest('a few MB of random data', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  writeFileSync(data, randomBytes(5 * 1024 * 1024 + 37 * BLOCK));
  await compareWithVeritysetup(t, data, dir);
});

oracleTest('sparse data (zero blocks hash like any other)', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  writeFileSync(data, randomBytes(BLOCK));
  truncateSync(data, 300 * BLOCK);
  await compareWithVeritysetup(t, data, dir);
});

for (const [name, salt] of [
  ['a non-default salt', randomBytes(17).toString('hex')],
  ['the longest salt (256 bytes)', randomBytes(256).toString('hex')],
  ['no salt', '-'],
] as const) {
  oracleTest(`${name} gives veritysetup's tree`, async (t) => {
    const dir = tempDir(t);
    const data = join(dir, 'data');
    writeFileSync(data, randomBytes(200 * BLOCK));
    await compareWithVeritysetup(t, data, dir, salt);
  });
}

oracleTest('an empty file is refused, as veritysetup refuses it', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  writeFileSync(data, '');
  const oracle = await veritysetupFormat(data, join(dir, 'oracle.hash'));
  t.not(oracle.status, 0, 'veritysetup refuses empty data');
  await t.throwsAsync(verityOfFile(data, { hashFile: join(dir, 'ours.hash') }), { instanceOf: InvalidArgumentError });
  t.false(existsSync(join(dir, 'ours.hash')));
});

oracleTest('less than one block is refused, as veritysetup refuses it', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  writeFileSync(data, randomBytes(BLOCK - 1));
  t.not((await veritysetupFormat(data, join(dir, 'oracle.hash'))).status, 0);
  await t.throwsAsync(verityOfFile(data), { instanceOf: InvalidArgumentError });
});

oracleTest('a ragged tail is refused: veritysetup would leave it out of the tree', async (t) => {
  const dir = tempDir(t);
  const data = join(dir, 'data');
  const bytes = randomBytes(3 * BLOCK + 10);
  writeFileSync(data, bytes);
  const ragged = await veritysetupFormat(data, join(dir, 'oracle.hash'));
  writeFileSync(join(dir, 'aligned'), bytes.subarray(0, 3 * BLOCK));
  const aligned = await veritysetupFormat(join(dir, 'aligned'), join(dir, 'oracle2.hash'));
  t.is(ragged.status, 0);
  t.is(ragged.rootHash, aligned.rootHash, 'the last 10 bytes do not count for veritysetup');
  const err = await t.throwsAsync(verityOfFile(data), { instanceOf: InvalidArgumentError });
  t.regex(err!.message, /12298 bytes, not a multiple of the 4096-byte dm-verity block/);
});
