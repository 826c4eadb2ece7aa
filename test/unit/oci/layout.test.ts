import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IntegrityViolationError, InvalidArgumentError, NotFoundError } from '../../../snapshotter/core/errors.js';
import { REF_NAME_ANNOTATION } from '../../../snapshotter/oci/annotations.js';
import { OciLayout, parseLayoutReference } from '../../../snapshotter/oci/layout.js';
import { openLayoutImage } from '../../../snapshotter/oci/image-source.js';
import { MediaType } from '../../../snapshotter/oci/types.js';
import { buildImage } from '../../support/oci-image.js';

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'oci-layout-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('references: <dir>[:tag], oci: prefix, colons inside directories', (t) => {
  t.deepEqual(parseLayoutReference('/tmp/app:1.0'), { dir: '/tmp/app', tag: '1.0' });
  t.deepEqual(parseLayoutReference('oci:/tmp/app'), { dir: '/tmp/app', tag: undefined });
  t.deepEqual(parseLayoutReference('/tmp/a:b/app'), { dir: '/tmp/a:b/app', tag: undefined });
  t.deepEqual(parseLayoutReference('rel/app:latest'), { dir: 'rel/app', tag: 'latest' });
  t.throws(() => parseLayoutReference('/tmp/app:'), { instanceOf: InvalidArgumentError });
});

test('a written layout has oci-layout, index.json and blobs named by digest', async (t) => {
  const dir = tempDir(t);
  const { descriptor } = await buildImage(dir, [[{ path: 'a', data: 'x' }]], { tag: 'v1' });
  t.deepEqual(JSON.parse(readFileSync(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8'));
  t.is(index.schemaVersion, 2);
  t.is(index.manifests[0].digest, descriptor.digest);
  t.is(index.manifests[0].annotations[REF_NAME_ANNOTATION], 'v1');
  t.true(readdirSync(join(dir, 'blobs', 'sha256')).includes(descriptor.digest.slice(7)));
  t.deepEqual(readdirSync(join(dir, 'blobs', 'sha256')).filter((n) => n.startsWith('.tmp-')), []);
});

test('resolve: by tag, the only image without a tag, errors that list the tags', async (t) => {
  const dir = tempDir(t);
  const one = await buildImage(dir, [[{ path: 'a', data: '1' }]], { tag: 'one' });
  const two = await buildImage(dir, [[{ path: 'a', data: '2' }]], { tag: 'two' });
  const layout = await OciLayout.open(dir);
  t.is((await layout.resolve('one')).digest, one.descriptor.digest);
  t.is((await layout.resolve('two')).digest, two.descriptor.digest);
  await t.throwsAsync(layout.resolve('three'), { instanceOf: NotFoundError, message: /no image tagged "three"/ });
  const err = await t.throwsAsync(layout.resolve(undefined), { instanceOf: InvalidArgumentError, message: /holds 2 images/ });
  t.regex((err as InvalidArgumentError).hint!, /one, two/);
  // Re-tagging replaces the entry that had the tag.
  await layout.addManifest(one.descriptor, 'two');
  t.is((await layout.resolve('two')).digest, one.descriptor.digest);
  t.deepEqual((await layout.readIndex()).manifests.map((m) => [m.digest, m.annotations?.[REF_NAME_ANNOTATION]]), [
    [one.descriptor.digest, 'one'],
    [one.descriptor.digest, 'two'],
  ]);
});

test('resolve: a nested index is refused with the fix', async (t) => {
  const dir = tempDir(t);
  const { descriptor } = await buildImage(dir, [[{ path: 'a', data: 'x' }]]);
  const layout = await OciLayout.open(dir);
  const nested = await layout.writeBlob(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [descriptor] })), MediaType.imageIndex);
  await layout.addManifest(nested, 'multi');
  await t.throwsAsync(layout.resolve('multi'), { instanceOf: InvalidArgumentError, message: /multi-platform index/ });
});

test('blobs are verified when read: whole and streamed', async (t) => {
  const dir = tempDir(t);
  const { layout, manifest } = await buildImage(dir, [[{ path: 'a', data: 'x'.repeat(10000) }]]);
  const layer = manifest.layers[0]!;
  await t.notThrowsAsync(layout.readBlob(layer));
  const path = layout.blobPath(layer.digest);
  const bytes = readFileSync(path);
  bytes[bytes.length - 10]! ^= 0xff;
  writeFileSync(path, bytes);
  await t.throwsAsync(layout.readBlob(layer), { instanceOf: IntegrityViolationError, message: new RegExp(`blob ${layer.digest}.*has digest`) });
  const drain = async () => { for await (const _ of layout.streamBlob(layer)) { /* read all */ } };
  await t.throwsAsync(drain(), { instanceOf: IntegrityViolationError });
  writeFileSync(path, Buffer.concat([bytes, Buffer.from('more')]));
  await t.throwsAsync(drain(), { instanceOf: IntegrityViolationError, message: /bytes, its descriptor says/ });
  rmSync(path);
  await t.throwsAsync(drain(), { instanceOf: NotFoundError, message: /missing/ });
});

test('openOrCreate refuses a non-empty directory that is not a layout and leaves it as it was', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'x'));
  writeFileSync(join(dir, 'x', 'keep'), 'data');
  await t.throwsAsync(OciLayout.openOrCreate(join(dir, 'x')), { instanceOf: InvalidArgumentError });
  t.deepEqual(readdirSync(join(dir, 'x')), ['keep']);
  await t.throwsAsync(OciLayout.open(join(dir, 'x')), { instanceOf: NotFoundError, message: /not an OCI image layout/ });
});

test('openLayoutImage reads and checks the manifest', async (t) => {
  const dir = tempDir(t);
  const built = await buildImage(dir, [[{ path: 'a', data: 'x' }], [{ path: 'b', data: 'y' }]], { tag: 'v2' });
  const image = await openLayoutImage(`${dir}:v2`);
  t.is(image.name, `oci:${dir}:v2`);
  t.deepEqual(image.manifest, built.manifest);
  t.is(image.descriptor.digest, built.descriptor.digest);
});
