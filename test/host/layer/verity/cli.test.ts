/** `integrityctl layer verity` end to end: the compiled CLI in a child process, veritysetup as the oracle. */
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { veritysetupFormat, veritysetupMissing } from '../../../support/veritysetup.js';

const MAIN = fileURLToPath(new URL('../../../../snapshotter/cli/main.js', import.meta.url));
const BLOCK = 4096;
const missing = veritysetupMissing();
const oracleTest = missing ? test.skip : test;
if (missing) test('veritysetup oracle', (t) => t.pass(`skipped: ${missing}`));

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

function integrityctl(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], (err, stdout, stderr) => {
      const status = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ status, stdout, stderr });
    });
  });
}

function fixture(t: { teardown(fn: () => void): void }, bytes: number): { dir: string; data: string } {
  const dir = mkdtempSync(join(tmpdir(), 'verity-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = join(dir, 'layer.erofs');
  writeFileSync(data, randomBytes(bytes));
  return { dir, data };
}

oracleTest('prints the root hash and writes the hash file veritysetup writes', async (t) => {
  const { dir, data } = fixture(t, 300 * BLOCK);
  const oracle = await veritysetupFormat(data, join(dir, 'oracle.hash'));
  const plain = await integrityctl('layer', 'verity', data);
  t.is(plain.status, 0, plain.stderr);
  t.is(plain.stdout, `${oracle.rootHash}\n`);

  const json = await integrityctl('layer', 'verity', data, '--hash-file', join(dir, 'layer.verity'), '--json');
  t.is(json.status, 0, json.stderr);
  t.deepEqual(JSON.parse(json.stdout), {
    rootHash: oracle.rootHash,
    salt: 'dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b',
    dataBlocks: 300,
    hashBlocks: 4,
    hashFile: join(dir, 'layer.verity'),
  });
  t.true(readFileSync(join(dir, 'layer.verity')).equals(readFileSync(join(dir, 'oracle.hash'))));
});

oracleTest('--salt and --workers 0 change nothing but the salt', async (t) => {
  const { dir, data } = fixture(t, 130 * BLOCK);
  const salt = randomBytes(32).toString('hex');
  const oracle = await veritysetupFormat(data, join(dir, 'oracle.hash'), salt);
  const run = await integrityctl('layer', 'verity', data, '--salt', salt.toUpperCase(), '--workers', '0', '--json');
  t.is(run.status, 0, run.stderr);
  t.like(JSON.parse(run.stdout), { rootHash: oracle.rootHash, salt, hashFile: null });
});

test('bad input: non-zero exit, a message and a hint, nothing written', async (t) => {
  const { dir, data } = fixture(t, 2 * BLOCK);
  writeFileSync(join(dir, 'ragged'), randomBytes(BLOCK + 1));
  const cases: { args: string[]; status: number; stderr: RegExp }[] = [
    { args: [data, '--salt', 'xyz'], status: 2, stderr: /salt "xyz" is not hex\n {2}hint: / },
    { args: [data, '--workers', 'two'], status: 2, stderr: /--workers "two" is not a whole number\n {2}hint: / },
    { args: [join(dir, 'missing')], status: 1, stderr: /data file .*missing does not exist\n {2}hint: / },
    { args: [join(dir, 'ragged'), '--hash-file', join(dir, 'out')], status: 2, stderr: /not a multiple of the 4096-byte/ },
    { args: [data, '--hash-file', join(dir, 'no-such-dir', 'out')], status: 1, stderr: /cannot create hash file .*its directory does not exist/ },
    { args: [], status: 1, stderr: /missing required argument 'file'/ },
  ];
  for (const { args, status, stderr } of cases) {
    const run = await integrityctl('layer', 'verity', ...args);
    t.is(run.status, status, args.join(' '));
    t.regex(run.stderr, stderr, args.join(' '));
    t.is(run.stdout, '', args.join(' '));
  }
  t.false(existsSync(join(dir, 'out')));
});

test('--help explains the command', async (t) => {
  const run = await integrityctl('layer', 'verity', '--help');
  t.is(run.status, 0);
  for (const text of ['<file>', '--hash-file', '--salt', '--json', '--workers', 'veritysetup format']) t.true(run.stdout.includes(text), text);
});
