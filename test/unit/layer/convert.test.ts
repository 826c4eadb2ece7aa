/** convertLayer end to end in-process: what the reader hands over reaches the image, results are consistent. */
import test from 'ava';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { InvalidArgumentError, LayerFormatError } from '../../../snapshotter/core/errors.js';
import { SUPER_BLOCK, SUPER_OFFSET } from '../../../snapshotter/layer/erofs/format.js';
import { convertLayer, type ConvertOptions } from '../../../snapshotter/layer/convert.js';
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

test('without layer digests the image and hash tree are the same, and the digests are absent', async (t) => {
  const dir = tempDir(t);
  const archive = new TarBuilder();
  archive.add({ path: 'etc/hostname', data: 'node\n' });
  const blob = gzipSync(archive.finish());
  const full = await convertLayer(once(blob), { output: join(dir, 'a.erofs'), hashFile: join(dir, 'a.verity') });
  const lean = await convertLayer(once(blob), { output: join(dir, 'b.erofs'), hashFile: join(dir, 'b.verity'), layerDigests: false });
  t.false('inputDigest' in lean || 'diffId' in lean);
  t.deepEqual({ ...lean, erofs: '', hashFile: '' }, { bytes: full.bytes, sha256: full.sha256, rootHash: full.rootHash, salt: full.salt, dataBlocks: full.dataBlocks, erofs: '', hashFile: '' });
  t.true(readFileSync(join(dir, 'a.verity')).equals(readFileSync(join(dir, 'b.verity'))));
  await t.throwsAsync(
    convertLayer(once(blob), { output: join(dir, 'c.erofs'), layerDigests: false, expectedDigest: full.inputDigest } as ConvertOptions),
    { instanceOf: InvalidArgumentError, message: /expectedDigest needs the layer digests/ },
  );
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

test("the input's own error comes out as itself (the snapshotter tells a registry's failure from a bad layer by it) and leaves no file", async (t) => {
  const dir = tempDir(t);
  class SourceFailed extends Error {}
  const archive = new TarBuilder();
  archive.add({ path: 'big', data: randomBytes(3 << 20) });
  const gzip = gzipSync(archive.finish());
  async function* cut(): AsyncIterable<Uint8Array> {
    yield gzip.subarray(0, 64 * 1024);
    throw new SourceFailed('connection reset');
  }
  await t.throwsAsync(convertLayer(cut(), { output: join(dir, 'out.erofs'), hashFile: join(dir, 'out.verity'), tempDir: dir }), {
    instanceOf: SourceFailed,
  });
  t.deepEqual(readdirSync(dir), []);
});

test('an abort stops the conversion at once, even while the input waits for data, and leaves no file', async (t) => {
  const dir = tempDir(t);
  const archive = new TarBuilder();
  archive.add({ path: 'big', data: randomBytes(3 << 20) });
  const tar = archive.finish();
  const controller = new AbortController();
  async function* stalls(): AsyncIterable<Uint8Array> {
    yield tar.subarray(0, 1 << 20);
    controller.abort(new Error('stop now'));
    await new Promise(() => undefined); // never more data
  }
  await t.throwsAsync(
    convertLayer(stalls(), { output: join(dir, 'out.erofs'), hashFile: join(dir, 'out.verity'), tempDir: dir, signal: controller.signal }),
    { message: 'stop now' },
  );
  t.deepEqual(readdirSync(dir), []);
});

test('an already aborted signal creates nothing', async (t) => {
  const dir = tempDir(t);
  await t.throwsAsync(
    convertLayer(once(new Uint8Array(1024)), { output: join(dir, 'out.erofs'), tempDir: dir, signal: AbortSignal.abort(new Error('too late')) }),
    { message: 'too late' },
  );
  t.deepEqual(readdirSync(dir), []);
});
