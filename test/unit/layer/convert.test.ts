/** convertLayer end to end in-process: what the reader hands over reaches the image, results are consistent. */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LayerFormatError } from '../../../snapshotter/core/errors.js';
import { SUPER_BLOCK, SUPER_OFFSET } from '../../../snapshotter/layer/erofs/format.js';
import { convertLayer } from '../../../snapshotter/layer/convert.js';
import { TarBuilder } from '../../support/tar-writer.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'convert-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function* once(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  yield bytes;
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

test('a GNU volume header becomes the superblock volume name', async (t) => {
  const dir = tempDir(t);
  const archive = new TarBuilder();
  archive.volume('demo-volume');
  archive.add({ path: 'a.txt', data: 'a\n' });
  const output = join(dir, 'out.erofs');
  await convertLayer(once(archive.finish()), { output });
  const image = readFileSync(output);
  const field = SUPER_BLOCK.fields.volume_name;
  const name = image.subarray(SUPER_OFFSET + field.offset, SUPER_OFFSET + field.offset + field.size);
  t.is(name.toString('latin1').replace(/\0+$/, ''), 'demo-volume');
});

test('digests describe the input as read and the uncompressed tar', async (t) => {
  const dir = tempDir(t);
  const archive = new TarBuilder();
  archive.add({ path: 'etc/hostname', data: 'node\n' });
  const tar = archive.finish();
  const blob = gzipSync(tar);
  const result = await convertLayer(once(blob), { output: join(dir, 'out.erofs'), hashFile: join(dir, 'out.verity') });
  t.is(result.inputDigest, `sha256:${sha256(blob)}`);
  t.is(result.diffId, `sha256:${sha256(tar)}`);
  t.is(result.sha256, sha256(readFileSync(join(dir, 'out.erofs'))));
  t.is(result.bytes % 4096, 0);
  t.is(result.dataBlocks, result.bytes / 4096);
});

test('a wrong expected digest leaves no file behind', async (t) => {
  const dir = tempDir(t);
  const archive = new TarBuilder();
  archive.add({ path: 'x', data: 'x' });
  const error = await t.throwsAsync(
    convertLayer(once(archive.finish()), {
      output: join(dir, 'out.erofs'),
      hashFile: join(dir, 'out.verity'),
      tempDir: dir,
      expectedDigest: `sha256:${'0'.repeat(64)}`,
    }),
  );
  t.is((error as { code?: string }).code, 'ERR_INTEGRITY');
  t.deepEqual(readdirSync(dir), []);
});

test('a layer error leaves no file behind', async (t) => {
  const dir = tempDir(t);
  const archive = new TarBuilder();
  archive.add({ path: '../escape', data: 'x' });
  await t.throwsAsync(convertLayer(once(archive.finish()), { output: join(dir, 'out.erofs'), hashFile: join(dir, 'out.verity'), tempDir: dir }), {
    instanceOf: LayerFormatError,
  });
  t.deepEqual(readdirSync(dir), []);
});
