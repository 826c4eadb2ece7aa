/**
 * ImageTrust on its own, over fake containerd services: verdicts are cached
 * by manifest digest and forgotten when the trust roots are reloaded.
 */
import test from 'ava';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { ImagePatterns } from '../../../../snapshotter/policy/image-patterns.js';
import { ImageLayers } from '../../../../snapshotter/service/containerd/image-layers.js';
import { ImageTrust } from '../../../../snapshotter/service/trust/image-trust.js';
import { ManifestSignatures } from '../../../../snapshotter/service/trust/manifest-signatures.js';
import { LayerRefusedError } from '../../../../snapshotter/service/trust/refusal.js';
import { addImage, FakeContent, FakeImages } from '../../../support/containerd-fakes.js';
import { sealed, testChain } from '../../../support/signed-fakes.js';

const NS = 'k8s.io';

test('a reload of the trust roots takes effect at once: the cached verdicts go', async (t) => {
  const [first, second] = [await testChain('First'), await testChain('Second')];
  const content = new FakeContent();
  const images = new FakeImages();
  const signatures = new ManifestSignatures(first.roots);
  const trust = new ImageTrust({ imageLayers: new ImageLayers(content, images, silentLogger), signatures, required: new ImagePatterns([]), logger: silentLogger });
  const img = addImage(content, images, NS, 'r/app:1', [Buffer.from('x')], sealed(second.signer));
  const layer = { chainId: img.chainIds[0]!, layerDigest: img.layers[0]!, imageRef: 'r/app:1', manifestDigest: img.manifest };
  await t.throwsAsync(trust.plan(NS, layer, img.layers[0]!), { instanceOf: LayerRefusedError, message: /trust-anchor/ });
  const reads = content.reads.length;
  await t.throwsAsync(trust.plan(NS, layer, img.layers[0]!), { instanceOf: LayerRefusedError });
  t.is(content.reads.length, reads, 'the manifest and its verdict came from the caches');

  trust.setTrustRoots([...first.roots, ...second.roots]);
  t.is(signatures.rootCount, 2);
  const plan = await trust.plan(NS, layer, img.layers[0]!);
  t.true(plan.protected);
  t.like(plan.accept({ rootHash: 'a'.repeat(64), diffId: img.layers[0]! }), { binding: 'signed-digest', signer: 'CN=Second signer', rootHash: 'a'.repeat(64) });
});

test('an image the configuration requires to be signed that cannot be read refuses the layers nothing else claims', async (t) => {
  const content = new FakeContent();
  const images = new FakeImages();
  const trust = new ImageTrust({
    imageLayers: new ImageLayers(content, images, silentLogger),
    signatures: new ManifestSignatures([]),
    required: new ImagePatterns(['r/d8/*']),
    logger: silentLogger,
  });
  const broken = addImage(content, images, 'default', 'r/d8/app:1', [Buffer.from('x')]);
  content.blobs.get('default')!.set(broken.manifest, Buffer.from('{}'));
  const other = addImage(content, images, 'default', 'r/free:1', [Buffer.from('y')]);
  const err = await t.throwsAsync(trust.plan('default', { chainId: other.chainIds[0]!, layerDigest: undefined, imageRef: undefined, manifestDigest: undefined }, other.layers[0]!), {
    instanceOf: LayerRefusedError,
  });
  t.like(err, { reason: 'unverifiable', check: 'manifest' });
  t.regex(err!.message, /image r\/d8\/app:1 .*must be signed .* cannot be read/);
});
