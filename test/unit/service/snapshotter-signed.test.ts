/**
 * Signed images on the node, with fake containerd services and fake layers
 * (the host test integrity-signed.test.ts runs the real ones): the signature
 * is checked before a layer is converted, the layer against it after, on the
 * fast path and on Commit from the blob; refusals commit nothing, name the
 * image, the layer and the check, and are counted; what was checked is
 * recorded with the layer and drives its dm-verity root hash and its
 * containers' read-only root.
 */
import test from 'ava';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AlreadyExistsError, LayerFormatError } from '../../../snapshotter/core/errors.js';
import { MediaType } from '../../../snapshotter/oci/types.js';
import { mountableLayer } from '../../../snapshotter/service/mounts/mountable-layer.js';
import {
  CRI_IMAGE_REF_LABEL,
  CRI_LAYER_DIGEST_LABEL,
  CRI_MANIFEST_DIGEST_LABEL,
  SNAPSHOT_REF_LABEL,
} from '../../../snapshotter/service/pull/source.js';
import { LayerRefusedError } from '../../../snapshotter/service/trust/refusal.js';
import { addImage, digestOf, type FakeImage } from '../../support/containerd-fakes.js';
import { pullFakes } from '../../support/pull-fakes.js';
import { fakeRootHash, sealed, testChain, type TestChain } from '../../support/signed-fakes.js';

const NS = 'k8s.io';
const LAYERS = [Buffer.from('layer one'), Buffer.from('layer two')];

let trusted: TestChain;
let rogue: TestChain;

test.before(async () => {
  trusted = await testChain('Trusted');
  rogue = await testChain('Rogue');
});

/** The labels of CRI's Prepare (and Commit) of layer `i` of `img`. */
function criLabels(img: FakeImage, i: number): Record<string, string> {
  return {
    [SNAPSHOT_REF_LABEL]: img.chainIds[i]!,
    [CRI_LAYER_DIGEST_LABEL]: img.layers[i]!,
    [CRI_MANIFEST_DIGEST_LABEL]: img.manifest,
    [CRI_IMAGE_REF_LABEL]: img.name,
  };
}

const unpackKey = (seq: number, chainId: string) => `${NS}/${seq}/extract-${seq}-abc ${chainId}`;

/** A CRI pull of every layer through the fast path; returns the committed names. */
async function criPull(f: Awaited<ReturnType<typeof pullFakes>>['f'], img: FakeImage): Promise<string[]> {
  const names: string[] = [];
  for (const i of img.layers.keys()) {
    await t_fastPath(f.snapshotter.prepare(NS, unpackKey(i + 1, img.chainIds[i]!), names.at(-1) ?? '', criLabels(img, i)));
    names.push(`${NS}/${i + 1}/${img.chainIds[i]}`);
  }
  return names;
}

async function t_fastPath(p: Promise<unknown>): Promise<void> {
  const outcome = await p.then(() => 'resolved', (err: unknown) => err);
  if (!(outcome instanceof AlreadyExistsError)) throw outcome instanceof Error ? outcome : new Error(`expected ALREADY_EXISTS, got ${String(outcome)}`);
}

test('a sealed image on the fast path: checked, committed with what its signature vouches for, mounted with the signed root hash, read-only', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/app:1', LAYERS, sealed(trusted.signer, { layerRootHashes: [fakeRootHash(1), fakeRootHash(2)] }));
  const [bottom, top] = await criPull(f, img);
  const origin = f.store.layerOrigin(NS, top!);
  t.deepEqual(origin.signed, { rootHash: fakeRootHash(2), binding: 'signed-list', image: 'r/app:1', manifest: img.manifest, signer: 'CN=Trusted signer' });
  t.is(f.store.layerOrigin(NS, bottom!).signed?.rootHash, fakeRootHash(1));
  t.is(mountableLayer(f.layout, f.store, origin.id).rootHash, fakeRootHash(2));
  t.deepEqual(refusals, []);

  const mounts = await f.snapshotter.prepare(NS, `${NS}/9/container`, top!, {});
  t.false(mounts[0]!.options.some((o) => o.startsWith('upperdir=')), 'a container of a signed image gets a read-only root');
});

test('the expected root hash of a mount is the signed one, the recorded one otherwise', (t) => {
  const layout = { image: (id: number) => `/l/${id}`, hashTree: (id: number) => `/l/${id}.v` } as never;
  const record = { id: 1, namespace: NS, name: 'c', rootHash: 'a'.repeat(64), images: [] };
  t.is(mountableLayer(layout, { committedLayer: () => record }, 1).rootHash, 'a'.repeat(64));
  const signed = { ...record, signed: { rootHash: 'b'.repeat(64), binding: 'signed-list' as const, image: 'r/app:1', manifest: 'sha256:m', signer: 'CN=s' } };
  t.is(mountableLayer(layout, { committedLayer: () => signed }, 1).rootHash, 'b'.repeat(64));
});

test('a signed list that does not match the converted layer: refused after conversion, nothing committed', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/app:1', LAYERS.slice(0, 1), sealed(trusted.signer, { layerRootHashes: ['e'.repeat(64)] }));
  const err = await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, img.chainIds[0]!), '', criLabels(img, 0)), { instanceOf: LayerRefusedError });
  t.is(err!.reason, 'root_hash_mismatch');
  t.is(err!.grpcCode, 9, 'FAILED_PRECONDITION');
  t.regex(err!.message, new RegExp(`^layer 1 \\(${img.layers[0]}\\) of image r/app:1 \\(manifest ${img.manifest}\\) is refused: root-hash check failed: the layer converts to root hash ${fakeRootHash(1)}, its signed io.containerd-integrity.layer-root-hashes entry is e{64}$`));
  t.regex(err!.hint ?? '', /seal the image again/);
  t.deepEqual(refusals, ['root_hash_mismatch']);
  t.deepEqual(f.snapshotter.list(NS, []), []);
  t.deepEqual(await readdir(f.layout.snapshots), f.store.listAll().map((s) => String(s.id)), 'the converted files are gone (the mountpoints layer stays)');
});

test('signature refusals come before any conversion: an untrusted signer, a bundle over another manifest', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const untrusted = addImage(content, images, NS, 'r/rogue:1', LAYERS.slice(0, 1), sealed(rogue.signer));
  const err = await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, untrusted.chainIds[0]!), '', criLabels(untrusted, 0)), { instanceOf: LayerRefusedError });
  t.like(err, { reason: 'signer_untrusted', check: 'trust-anchor' });
  t.regex(err!.message, /image r\/rogue:1 .* trust-anchor check failed: the path ends at root "CN=Rogue Root CA"/);

  // The bundle of one manifest pasted onto another one.
  const other = addImage(content, images, NS, 'r/other:1', [Buffer.from('other')], sealed(trusted.signer));
  const copied = addImage(content, images, NS, 'r/copy:1', [Buffer.from('copy')], (m) => ({ ...m, annotations: JSON.parse(content.blobs.get(NS)!.get(other.manifest)!.toString()).annotations }));
  const err2 = await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(2, copied.chainIds[0]!), '', criLabels(copied, 0)), { instanceOf: LayerRefusedError });
  t.like(err2, { reason: 'signature_invalid', check: 'signature' });
  t.is(f.layers.blobCommits, 0, 'nothing was converted');
  t.deepEqual(refusals, ['signer_untrusted', 'signature_invalid']);
});

test('ctr import (no labels): a required image without signature is refused at Commit; the active snapshot stays as it was', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots, required: ['r/d8/*'] });
  const img = addImage(content, images, 'default', 'r/d8/app:1', LAYERS.slice(0, 1));
  const chainId = img.chainIds[0]!;
  const key = `default/1/extract-1-x ${chainId}`;
  await f.snapshotter.prepare('default', key, '', {});
  const err = await t.throwsAsync(f.snapshotter.commit('default', `default/2/${chainId}`, key, {}), { instanceOf: LayerRefusedError });
  t.like(err, { reason: 'signature_missing', check: 'bundle' });
  t.regex(err!.message, /layer 1 .* of image r\/d8\/app:1 .* not signed, and signatures\.required_images names the image \("r\/d8\/\*"\)/);
  t.is(f.snapshotter.stat('default', key).kind, 'active');
  t.deepEqual(refusals, ['signature_missing']);
});

test('ctr import: a sealed image is committed from its blob with its signature record', async (t) => {
  const { f, content, images } = await pullFakes(t, {}, { roots: trusted.roots, required: ['r/d8/*'] });
  const img = addImage(content, images, 'default', 'r/d8/app:1', LAYERS.slice(0, 1), sealed(trusted.signer, { layerRootHashes: [fakeRootHash(1)] }));
  const chainId = img.chainIds[0]!;
  const key = `default/1/extract-1-x ${chainId}`;
  await f.snapshotter.prepare('default', key, '', {});
  await f.snapshotter.commit('default', `default/2/${chainId}`, key, {});
  t.like(f.store.layerOrigin('default', `default/2/${chainId}`).signed, { binding: 'signed-list', image: 'r/d8/app:1', rootHash: fakeRootHash(1) });
});

test('a Delivery Kit image (no signed list): bound by its digest, the recomputed root hash is recorded as the trusted one', async (t) => {
  const { f, content, images } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/dk:1', LAYERS.slice(0, 1), sealed(trusted.signer));
  const [name] = await criPull(f, img);
  t.like(f.store.layerOrigin(NS, name!).signed, { binding: 'signed-digest', rootHash: fakeRootHash(1) });
});

test("a blob in the content store that is not the signed one: the conversion's digest check is a refusal", async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/app:1', LAYERS.slice(0, 1), sealed(trusted.signer, { layerRootHashes: [fakeRootHash(1)] }));
  content.blobs.get(NS)!.set(img.layers[0]!, Buffer.from('swapped bytes'));
  const err = await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, img.chainIds[0]!), '', criLabels(img, 0)), { instanceOf: LayerRefusedError });
  t.like(err, { reason: 'content_mismatch', check: 'blob' });
  t.regex(err!.message, /the blob in containerd's content store is not the signed one: layer digest mismatch/);
  t.deepEqual(refusals, ['content_mismatch']);
  t.deepEqual(f.snapshotter.list(NS, []), []);
});

test('a blob that cannot be read as a layer is a refusal too for a signed image (containerd reads a replaced blob only up to its recorded size)', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/app:1', LAYERS.slice(0, 1), sealed(trusted.signer));
  f.layers.commitBlob = async () => {
    throw new LayerFormatError('gzip stream is corrupt or truncated');
  };
  const err = await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, img.chainIds[0]!), '', criLabels(img, 0)), { instanceOf: LayerRefusedError });
  t.like(err, { reason: 'content_mismatch', check: 'blob' });
  t.regex(err!.message, /cannot be read as the signed layer: gzip stream is corrupt/);
  t.true(err!.cause instanceof LayerFormatError);
  t.deepEqual(refusals, ['content_mismatch']);
});

test('one chain, several images (no labels): a signed image protects it, a bad signature on any of them refuses it', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  addImage(content, images, 'default', 'r/plain:1', LAYERS.slice(0, 1));
  const signed = addImage(content, images, 'default', 'r/signed:1', LAYERS.slice(0, 1), sealed(trusted.signer, { layerRootHashes: [fakeRootHash(1)] }));
  const chainId = signed.chainIds[0]!;
  await f.snapshotter.prepare('default', `default/1/extract-1 ${chainId}`, '', {});
  await f.snapshotter.commit('default', `default/2/${chainId}`, `default/1/extract-1 ${chainId}`, {});
  t.like(f.store.layerOrigin('default', `default/2/${chainId}`).signed, { image: 'r/signed:1' });

  const other = Buffer.from('shared by a rogue image');
  addImage(content, images, 'default', 'r/plain:2', [other]);
  const rogueImage = addImage(content, images, 'default', 'r/rogue:2', [other], sealed(rogue.signer));
  const c2 = rogueImage.chainIds[0]!;
  await f.snapshotter.prepare('default', `default/3/extract-3 ${c2}`, '', {});
  await t.throwsAsync(f.snapshotter.commit('default', `default/4/${c2}`, `default/3/extract-3 ${c2}`, {}), { instanceOf: LayerRefusedError, message: /image r\/rogue:2/ });
  t.deepEqual(refusals, ['signer_untrusted']);
});

test('the manifest a CRI label names must be there and list the layer', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/app:1', LAYERS);
  const elsewhere = addImage(content, images, NS, 'r/else:1', [Buffer.from('else')]);
  const labels = { ...criLabels(img, 0), [CRI_MANIFEST_DIGEST_LABEL]: elsewhere.manifest };
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, img.chainIds[0]!), '', labels), { instanceOf: LayerRefusedError, message: /manifest check failed: the manifest does not list the layer/ });
  const gone = { ...criLabels(img, 0), [CRI_MANIFEST_DIGEST_LABEL]: digestOf(Buffer.from('no such manifest')) };
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(2, img.chainIds[0]!), '', gone), { instanceOf: LayerRefusedError, message: /not in containerd's content store/ });
  t.deepEqual(refusals, ['unverifiable', 'unverifiable']);
});

test('containerd down: a layer of a required image is not built from the upper dir', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots, required: ['r/d8/*'] });
  const img = addImage(content, images, NS, 'r/d8/app:1', LAYERS.slice(0, 1));
  content.down = true;
  images.down = true;
  const key = unpackKey(1, img.chainIds[0]!);
  await f.snapshotter.prepare(NS, key, '', criLabels(img, 0));
  await writeFile(join(f.layout.upper(f.store.getInfo(NS, key).id), 'file'), 'x');
  await t.throwsAsync(f.snapshotter.commit(NS, `${NS}/2/${img.chainIds[0]}`, key, criLabels(img, 0)), {
    instanceOf: LayerRefusedError,
    message: /blob check failed: its blob is not in containerd's content store/,
  });
  t.deepEqual(refusals, ['unverifiable']);
  t.is(f.layers.commits, 0);
});

test('unsigned images are not touched by the checks: same path as without them', async (t) => {
  const { f, content, images, refusals } = await pullFakes(t, {}, { roots: trusted.roots });
  const img = addImage(content, images, NS, 'r/free:1', LAYERS, (m) => ({ ...m, mediaType: MediaType.imageManifest }));
  const [, top] = await criPull(f, img);
  t.is(f.store.layerOrigin(NS, top!).signed, undefined);
  const mounts = await f.snapshotter.prepare(NS, `${NS}/9/container`, top!, {});
  t.true(mounts[0]!.options.some((o) => o.startsWith('upperdir=')), 'a writable root');
  t.deepEqual(refusals, []);
});

test('a chain committed for an unsigned image: a signed image using it still gets read-only containers (asked at Prepare)', async (t) => {
  const { f, content, images } = await pullFakes(t, {}, { roots: trusted.roots });
  const plain = addImage(content, images, NS, 'r/app:1', LAYERS.slice(0, 1));
  const [top] = await criPull(f, plain);
  t.true((await f.snapshotter.prepare(NS, `${NS}/8/before`, top!, {}))[0]!.options.some((o) => o.startsWith('upperdir=')));
  // The same layers sealed: containerd finds the chain committed and never asks the snapshotter to convert it.
  addImage(content, images, NS, 'r/app:1-signed', LAYERS.slice(0, 1), sealed(trusted.signer));
  const mounts = await f.snapshotter.prepare(NS, `${NS}/9/after`, top!, {});
  t.false(mounts[0]!.options.some((o) => o.startsWith('upperdir=')));
});
