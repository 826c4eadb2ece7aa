/**
 * Acceptance: for every golden vector, our image has exactly the bytes
 * erofs-utils 1.8.10 wrote (`mkfs.erofs -Uclear -T1750791050 -x-1
 * -Enoinline_data --aufs --tar=f`), as pinned by sha256 in golden.json.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildErofs } from '../../../support/erofs-build.js';
import { goldenVectors, makeGoldenTars } from '../../../support/golden-tars.js';

let dir: string | undefined;
const tars = new Map<string, string>();
test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'erofs-golden-'));
  for (const vector of await makeGoldenTars(dir)) tars.set(vector.name, vector.tarPath);
});
test.after.always(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const vectors = goldenVectors();

for (const vector of vectors) {
  test(`golden ${vector.name}: same bytes as mkfs.erofs 1.8.10`, (t) => {
    const image = buildErofs(readFileSync(tars.get(vector.name)!));
    t.is(image.length, vector.erofsBytes);
    t.is(createHash('sha256').update(image).digest('hex'), vector.erofsSha256);
  });
}

test('all 24 vectors are checked', (t) => {
  t.is(vectors.length, 24);
});
