import test from 'ava';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { ImageLayers } from '../../../../snapshotter/service/containerd/image-layers.js';
import { LayerBlobs } from '../../../../snapshotter/service/pull/layer-blobs.js';
import type { LayerSource } from '../../../../snapshotter/service/pull/source.js';
import { addImage, digestOf, FakeContent, FakeImages } from '../../../support/containerd-fakes.js';

const NS = 'k8s.io';

function setup(stallMs = 10_000) {
  const content = new FakeContent();
  const images = new FakeImages();
  const blobs = new LayerBlobs({ content, imageLayers: new ImageLayers(content, images, silentLogger), logger: silentLogger, pollMs: 5, stallMs });
  return { content, images, blobs };
}

const source = (s: Partial<LayerSource>): LayerSource => ({ chainId: undefined, layerDigest: undefined, imageRef: undefined, manifestDigest: undefined, ...s });

test("CRI's layer digest: found when the blob is there, with the image being pulled", async (t) => {
  const { content, blobs } = setup();
  const digest = content.add(NS, Buffer.from('layer'));
  t.deepEqual(await blobs.find(NS, source({ chainId: digest, layerDigest: digest, imageRef: 'r/a:1' }), { waitForFetch: false }), {
    digest,
    diffId: undefined,
    images: ['r/a:1'],
    above: [],
  });
});

test('no label: resolved through the images, with the diff ID the config promises', async (t) => {
  const { content, images, blobs } = setup();
  const a = addImage(content, images, NS, 'r/a:1', [Buffer.from('one'), Buffer.from('two')]);
  t.deepEqual(await blobs.find(NS, source({ chainId: a.chainIds[1] }), { waitForFetch: false }), {
    digest: a.layers[1]!,
    diffId: a.layers[1],
    images: ['r/a:1'],
    above: [],
  });
  t.deepEqual((await blobs.find(NS, source({ chainId: a.chainIds[0] }), { waitForFetch: false }))?.above.map((l) => l.chainId), [a.chainIds[1]], 'the layers above it');
  t.is(await blobs.find(NS, source({ chainId: `sha256:${'0'.repeat(64)}` }), { waitForFetch: false }), undefined);
});

test('a blob being fetched: waited for while the ingest grows, found once committed; without waitForFetch, not waited for', async (t) => {
  const { content, blobs } = setup();
  const bytes = Buffer.from('arriving');
  const digest = digestOf(bytes);
  const ingest = { ref: `layer-${digest}`, offset: 0 };
  content.ingesting.set(NS, [ingest]);
  const grow = setInterval(() => (ingest.offset += 1), 2);
  setTimeout(() => {
    clearInterval(grow);
    content.add(NS, bytes);
    content.ingesting.set(NS, []);
  }, 60);
  t.is((await blobs.find(NS, source({ layerDigest: digest }), { waitForFetch: true }))?.digest, digest);
  t.is(await blobs.find(NS, source({ layerDigest: digestOf(Buffer.from('x')) }), { waitForFetch: false }), undefined);
});

test('an ingest that stopped growing (a cancelled fetch left behind) is not waited for', async (t) => {
  const { content, blobs } = setup(50);
  const digest = digestOf(Buffer.from('stalled'));
  content.ingesting.set(NS, [{ ref: `layer-${digest}`, offset: 10 }]);
  t.is(await blobs.find(NS, source({ layerDigest: digest }), { waitForFetch: true }), undefined);
});

test('containerd not answering: no blob, no error (the writable path still works)', async (t) => {
  const { content, blobs } = setup();
  const digest = content.add(NS, Buffer.from('layer'));
  content.down = true;
  t.is(await blobs.find(NS, source({ layerDigest: digest }), { waitForFetch: true }), undefined);
});

test("a fetch not started yet is waited for while the pull's other fetches progress", async (t) => {
  const { content, blobs } = setup(100);
  const bytes = Buffer.from('later layer');
  const digest = digestOf(bytes);
  const other = { ref: `layer-${digestOf(Buffer.from('earlier layer'))}`, offset: 0 };
  content.ingesting.set(NS, [other]);
  // The earlier fetch grows for longer than stallMs, then this blob's own fetch runs (growing too) and completes.
  let fetching = other;
  const grow = setInterval(() => (fetching.offset += 1), 10);
  setTimeout(() => {
    fetching = { ref: `layer-${digest}`, offset: 1 };
    content.ingesting.set(NS, [fetching]);
  }, 250);
  setTimeout(() => {
    clearInterval(grow);
    content.add(NS, bytes);
    content.ingesting.set(NS, []);
  }, 300);
  t.is((await blobs.find(NS, source({ layerDigest: digest }), { waitForFetch: true }))?.digest, digest);
});

test("given up once no fetch of the namespace has progressed for stallMs", async (t) => {
  const { content, blobs } = setup(50);
  const digest = digestOf(Buffer.from('never fetched'));
  content.ingesting.set(NS, [{ ref: `layer-${digestOf(Buffer.from('stuck'))}`, offset: 5 }]);
  const started = Date.now();
  t.is(await blobs.find(NS, source({ layerDigest: digest }), { waitForFetch: true }), undefined);
  t.true(Date.now() - started < 1000);
});
