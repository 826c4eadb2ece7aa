import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { goldenVectors, makeGoldenTars } from '../../../support/golden-tars.js';
import { parseChunks } from '../../../support/tar-events.js';
import { differencesFromOracle, readWithPythonTarfile } from '../../../support/tarfile-oracle.js';

const dir = mkdtempSync(join(tmpdir(), 'golden-tars-'));
const made = makeGoldenTars(dir);
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

test('the golden tars regenerate with the sums golden.json pins', async (t) => {
  t.is((await made).length, 24);
});

for (const { name } of goldenVectors()) {
  test(`golden ${name}: every member matches Python tarfile`, async (t) => {
    const vector = (await made).find((v) => v.name === name)!;
    const ours = parseChunks(readFileSync(vector.tarPath));
    t.true(ours.ended);
    t.deepEqual(ours.warnings, []);
    t.deepEqual(differencesFromOracle(ours.members, await readWithPythonTarfile(vector.tarPath)), []);
  });
}

test('golden xattrs: the records arrive in archive order with exact bytes', async (t) => {
  const vector = (await made).find((v) => v.name === 'xattrs')!;
  const many = parseChunks(readFileSync(vector.tarPath)).members.find((m) => m.entry.path === 'xdir/many')!;
  t.deepEqual(many.entry.xattrs.map((x) => x.name), ['user.zeta', 'user.alpha', 'trusted.overlay.origin', 'user.mid', 'security.ima', 'user.empty']);
  t.deepEqual([...many.entry.xattrs[2]!.value], [0, 1, 2, 3]);
  t.is(many.entry.xattrs[5]!.value.length, 0);
});

test('golden gnu-longname: GNU L/K names and targets replace the truncated header fields', async (t) => {
  const vector = (await made).find((v) => v.name === 'gnu-longname')!;
  const [file, link] = parseChunks(readFileSync(vector.tarPath)).members;
  t.is(file!.entry.path, `gnu/${'g'.repeat(150)}.txt`);
  t.is(link!.entry.linkTarget, `../${'t'.repeat(130)}`);
  t.is(link!.entry.offset, 2048);
});

test('the oracle comparison reports a member that differs', async (t) => {
  const vector = (await made).find((v) => v.name === 'modes-owners')!;
  const ours = parseChunks(readFileSync(vector.tarPath)).members;
  ours[3] = { ...ours[3]!, entry: { ...ours[3]!.entry, uid: ours[3]!.entry.uid + 1 } };
  const differences = differencesFromOracle(ours, await readWithPythonTarfile(vector.tarPath));
  t.is(differences.length, 1);
  t.regex(differences[0]!, /member 3 .*uid/);
});
