/**
 * An image in (fake) containerd's content store verified like an OCI layout:
 * `integrityctl image verify --containerd` reads it through this source.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IntegrityViolationError, InvalidArgumentError, NotFoundError } from '../../../../snapshotter/core/errors.js';
import { verifyImage } from '../../../../snapshotter/image/verify.js';
import { convertLayer } from '../../../../snapshotter/layer/convert.js';
import { MediaType } from '../../../../snapshotter/oci/types.js';
import { openContainerdImage } from '../../../../snapshotter/service/containerd/image-source.js';
import { addImage, FakeContent, FakeImages } from '../../../support/containerd-fakes.js';
import { makeTar } from '../../../support/oci-image.js';
import { sealed, testChain } from '../../../support/signed-fakes.js';

const NS = 'k8s.io';

async function rootHashOf(tar: Buffer): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'image-source-'));
  try {
    return (await convertLayer((async function* () { yield tar; })(), { output: join(dir, 'l.erofs') })).rootHash;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a sealed image in the content store passes every check; a swapped blob fails its layer check', async (t) => {
  const chain = await testChain();
  const content = new FakeContent();
  const images = new FakeImages();
  const tars = [makeTar([{ path: 'a', data: 'one\n' }]), makeTar([{ path: 'b', data: 'two\n' }])];
  const hashes = [await rootHashOf(tars[0]!), await rootHashOf(tars[1]!)];
  const img = addImage(content, images, NS, 'registry.test/app:1', tars, sealed(chain.signer, { layerRootHashes: hashes }));
  const open = () => openContainerdImage({ content, images, namespace: NS, name: 'registry.test/app:1' });

  const good = await verifyImage(await open(), chain.roots);
  t.true(good.ok, JSON.stringify(good.checks));
  t.is(good.image, `containerd:${NS}/registry.test/app:1`);
  t.is(good.manifestDigest, img.manifest);
  t.deepEqual(good.checks.map((c) => `${c.check} ${c.status}`), ['bundle ok', 'chain ok', 'signature ok', 'layer-root-hashes ok', 'layer ok', 'layer ok', 'image-root-hash skipped']);

  content.blobs.get(NS)!.set(img.layers[1]!, makeTar([{ path: 'b', data: 'TWO\n' }]));
  const bad = await verifyImage(await open(), chain.roots);
  t.false(bad.ok);
  const layer2 = bad.checks.find((c) => c.check === 'layer' && c.layer === 2);
  t.is(layer2?.status, 'failed');
  t.regex(layer2!.detail, /in containerd's content store has \d+ bytes with digest sha256:/);
  await t.throwsAsync(async () => {
    for await (const _ of (await open()).streamBlob({ mediaType: MediaType.layerTar, digest: img.layers[1]!, size: 3 })) void _;
  }, { instanceOf: IntegrityViolationError, message: /longer than its descriptor's 3 bytes/ });
});

test("an index: this machine's platform's manifest; an image that is not there is NOT_FOUND", async (t) => {
  const content = new FakeContent();
  const images = new FakeImages();
  const img = addImage(content, images, NS, 'tmp', [makeTar([{ path: 'a', data: 'x' }])]);
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.imageIndex,
    manifests: [
      { mediaType: MediaType.imageManifest, digest: `sha256:${'e'.repeat(64)}`, size: 10, platform: { os: 'linux', architecture: 'arm64' } },
      { mediaType: MediaType.imageManifest, digest: img.manifest, size: content.blobs.get(NS)!.get(img.manifest)!.length, platform: { os: 'linux', architecture: 'amd64' } },
    ],
  }));
  const digest = content.add(NS, index);
  images.records.set(NS, [{ name: 'r/multi:1', target: { mediaType: MediaType.imageIndex, digest, size: index.length } }]);
  const source = await openContainerdImage({ content, images, namespace: NS, name: 'r/multi:1', platform: { os: 'linux', architecture: 'amd64' } });
  t.is(source.descriptor.digest, img.manifest);
  await t.throwsAsync(openContainerdImage({ content, images, namespace: NS, name: 'r/multi:1', platform: { os: 'linux', architecture: 'arm64' } }), {
    instanceOf: InvalidArgumentError,
    message: /index with 0 linux\/arm64 manifest/,
  });
  await t.throwsAsync(openContainerdImage({ content, images, namespace: NS, name: 'r/other:1' }), { instanceOf: NotFoundError, message: /no image "r\/other:1" in namespace "k8s.io"/ });
});
