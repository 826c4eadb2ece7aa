import test from 'ava';
import { IntegrityViolationError } from '../../../../snapshotter/core/errors.js';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { MediaType } from '../../../../snapshotter/oci/types.js';
import { ImageLayers } from '../../../../snapshotter/service/containerd/image-layers.js';
import { addImage, FakeContent, FakeImages } from '../../../support/containerd-fakes.js';

const NS = 'k8s.io';
const tar = (s: string) => Buffer.from(`tar of ${s}`);

function setup() {
  const content = new FakeContent();
  const images = new FakeImages();
  return { content, images, layers: new ImageLayers(content, images, silentLogger) };
}

test('a chain ID resolves to its layer blob and every image whose chain contains it', async (t) => {
  const { content, images, layers } = setup();
  const a = addImage(content, images, NS, 'r/a:1', [tar('base'), tar('a')]);
  const b = addImage(content, images, NS, 'r/b:1', [tar('base')]);
  addImage(content, images, NS, 'r/c:1', [tar('other')]);
  const match = await layers.find(NS, a.chainIds[0]!);
  t.deepEqual(match?.images, ['r/a:1', 'r/b:1']);
  t.is(match?.layer.blob.digest, a.layers[0]);
  t.is(match?.layer.diffId, a.layers[0]);
  t.deepEqual(match?.above.map((l) => l.chainId), [a.chainIds[1]], 'the layers above it in the first image that has it');
  t.deepEqual((await layers.find(NS, a.chainIds[1]!))?.images, ['r/a:1']);
  t.is(await layers.find(NS, `sha256:${'0'.repeat(64)}`), undefined);
  t.is(await layers.find('other-ns', b.chainIds[0]!), undefined, 'images are per namespace');
});

test('manifests are read once: the result is cached by manifest digest', async (t) => {
  const { content, images, layers } = setup();
  const a = addImage(content, images, NS, 'r/a:1', [tar('x')]);
  await layers.find(NS, a.chainIds[0]!);
  const reads = content.reads.length;
  await layers.find(NS, a.chainIds[0]!);
  t.is(content.reads.length, reads);
});

test('an index: the manifests present count, absent ones are skipped', async (t) => {
  const { content, images, layers } = setup();
  const a = addImage(content, images, NS, 'tmp', [tar('amd64')]);
  images.records.set(NS, []);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.imageIndex,
      manifests: [
        { mediaType: MediaType.imageManifest, digest: `sha256:${'e'.repeat(64)}`, size: 10 },
        { mediaType: MediaType.imageManifest, digest: a.manifest, size: 10 },
      ],
    }),
  );
  const digest = content.add(NS, index);
  images.records.set(NS, [{ name: 'r/multi:1', target: { mediaType: MediaType.imageIndex, digest, size: index.length } }]);
  t.deepEqual((await layers.find(NS, a.chainIds[0]!))?.images, ['r/multi:1']);
});

test('an image whose documents are corrupt is reported, not thrown; the others still count', async (t) => {
  const { content, images, layers } = setup();
  const a = addImage(content, images, NS, 'r/a:1', [tar('a')]);
  const bad = addImage(content, images, NS, 'r/bad:1', [tar('b')]);
  content.blobs.get(NS)!.set(bad.manifest, Buffer.from('{"not":"it"}'));
  const chains = await layers.imageChains(NS);
  t.is(chains.find((c) => c.name === 'r/a:1')?.manifests[0]?.layers[0]?.chainId, a.chainIds[0]);
  const failed = chains.find((c) => c.name === 'r/bad:1');
  t.true(failed?.error instanceof IntegrityViolationError);
  t.regex(failed!.error!.message, /manifest .* of image r\/bad:1/);
});

test('select: only the images asked for are read', async (t) => {
  const { content, images, layers } = setup();
  addImage(content, images, NS, 'r/a:1', [tar('a')]);
  addImage(content, images, NS, 'r/b:1', [tar('b')]);
  const chains = await layers.imageChains(NS, (name) => name.startsWith('r/b'));
  t.deepEqual(chains.map((c) => c.name), ['r/b:1']);
});
