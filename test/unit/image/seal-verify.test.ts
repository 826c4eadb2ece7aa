import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, SignatureError } from '../../../snapshotter/core/errors.js';
import { convertLayer } from '../../../snapshotter/layer/convert.js';
import { sealImage } from '../../../snapshotter/image/seal.js';
import { verifyImage, type ImageVerification } from '../../../snapshotter/image/verify.js';
import {
  BUILD_TIMESTAMP_ANNOTATION,
  CERT_ANNOTATION,
  CHAIN_ANNOTATION,
  DM_VERITY_ROOT_HASH_ANNOTATION,
  LAYER_ROOT_HASHES_ANNOTATION,
  SIGNATURE_ANNOTATION,
} from '../../../snapshotter/oci/annotations.js';
import { openLayoutImage } from '../../../snapshotter/oci/image-source.js';
import { OciLayout } from '../../../snapshotter/oci/layout.js';
import { MediaType, serializeJson, type ImageManifest } from '../../../snapshotter/oci/types.js';
import { bundleAnnotations, createSigner, signMessage } from '../../../snapshotter/signature/bundle.js';
import { signedMessage } from '../../../snapshotter/signature/payload.js';
import { buildImage, makeTar, type FileSpec } from '../../support/oci-image.js';
import { createPki } from '../../support/pki.js';

const pki = createPki();
const LAYERS: FileSpec[][] = [
  [{ path: 'bin/' }, { path: 'bin/busybox', data: 'busybox binary', mode: 0o755 }, { path: 'etc/' }, { path: 'etc/hostname', data: 'base' }],
  [{ path: 'app/' }, { path: 'app/run', data: '#!/bin/sh\necho hi\n', mode: 0o755 }],
];

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'seal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function signer(name: 'p256' | 'p384' | 'rsa2048' | 'ed25519' = 'p256') {
  const { intermediate, root, leaves } = await pki;
  return createSigner({ key: leaves[name].keyPem, cert: leaves[name].certPem, chain: intermediate.certPem + root.certPem });
}

async function rootHashOf(tar: Buffer, dir: string): Promise<string> {
  return (await convertLayer((async function* () { yield tar; })(), { output: join(dir, `${Math.random()}.erofs`) })).rootHash;
}

async function verify(ref: string): Promise<ImageVerification> {
  const { root } = await pki;
  return verifyImage(await openLayoutImage(ref), [root.cert]);
}

function statuses(result: ImageVerification): string[] {
  return result.checks.map((c) => `${c.check}${c.layer ? ` ${c.layer}` : ''}: ${c.status}`);
}

/** Rewrites the manifest tagged `tag` in `dir` (new blob, index entry replaced). */
async function rewrite(dir: string, tag: string, edit: (m: ImageManifest) => void): Promise<void> {
  const image = await openLayoutImage(`${dir}:${tag}`);
  const manifest = structuredClone(image.manifest);
  edit(manifest);
  const descriptor = await image.layout.writeBlob(serializeJson(manifest), MediaType.imageManifest);
  await image.layout.addManifest(descriptor, tag);
}

test('seal: root hashes on every layer and the manifest, signed; verify passes every check', async (t) => {
  const dir = tempDir(t);
  const built = await buildImage(join(dir, 'in'), LAYERS, { tag: 'v1' });
  const result = await sealImage({ input: join(dir, 'in:v1'), output: join(dir, 'out'), signer: await signer() });
  t.is(result.output, `oci:${join(dir, 'out')}:v1`);

  // Layer root hashes equal the pipeline's on each tar alone.
  const expected = [await rootHashOf(built.tars[0]!, dir), await rootHashOf(built.tars[1]!, dir)];
  t.deepEqual(result.layerRootHashes, expected);
  // No whiteouts or shared names here, so the flattened tar is the top layer's members, then the base's.
  t.is(result.imageRootHash, await rootHashOf(makeTar([...LAYERS[1]!, ...LAYERS[0]!]), dir));

  const sealed = (await openLayoutImage(join(dir, 'out:v1'))).manifest;
  t.deepEqual(sealed.layers.map((l) => l.annotations), expected.map((h) => ({ [DM_VERITY_ROOT_HASH_ANNOTATION]: h, [BUILD_TIMESTAMP_ANNOTATION]: '1750791050' })));
  t.is(sealed.annotations![DM_VERITY_ROOT_HASH_ANNOTATION], result.imageRootHash);
  t.is(sealed.annotations![LAYER_ROOT_HASHES_ANNOTATION], expected.join(','));
  t.is(sealed.annotations!['org.example.built-by'], 'test');
  for (const key of [SIGNATURE_ANNOTATION, CERT_ANNOTATION, CHAIN_ANNOTATION]) t.truthy(sealed.annotations![key], key);
  // Layer blobs and config are the input's.
  t.deepEqual(sealed.layers.map((l) => l.digest), built.manifest.layers.map((l) => l.digest));
  t.is(sealed.config.digest, built.manifest.config.digest);

  const verification = await verify(join(dir, 'out:v1'));
  t.deepEqual(statuses(verification), [
    'bundle: ok', 'chain: ok', 'signature: ok', 'layer-root-hashes: ok', 'layer 1: ok', 'layer 2: ok', 'image-root-hash: ok',
  ]);
  t.true(verification.ok);
});

for (const algorithm of ['p384', 'rsa2048', 'ed25519'] as const) {
  test(`seal and verify with a ${algorithm} signer`, async (t) => {
    const dir = tempDir(t);
    await buildImage(join(dir, 'in'), LAYERS.slice(0, 1), { tag: 'v1' });
    await sealImage({ input: join(dir, 'in'), output: join(dir, 'out'), signer: await signer(algorithm) });
    t.true((await verify(join(dir, 'out:v1'))).ok);
  });
}

test('verify: a tampered layer blob fails, naming the layer', async (t) => {
  const dir = tempDir(t);
  await buildImage(join(dir, 'in'), LAYERS, { tag: 'v1' });
  const { manifest } = await sealImage({ input: join(dir, 'in:v1'), output: join(dir, 'out'), signer: await signer() });
  const layout = await OciLayout.open(join(dir, 'out'));
  const path = layout.blobPath(manifest.layers[1]!.digest);
  const bytes = readFileSync(path);
  bytes[20]! ^= 0x01;
  writeFileSync(path, bytes);
  const result = await verify(join(dir, 'out:v1'));
  t.false(result.ok);
  t.deepEqual(statuses(result), [
    'bundle: ok', 'chain: ok', 'signature: ok', 'layer-root-hashes: ok', 'layer 1: ok', 'layer 2: failed', 'image-root-hash: failed',
  ]);
  const layer2 = result.checks.find((c) => c.layer === 2)!;
  t.regex(layer2.detail, new RegExp(`^layer 2 \\(${manifest.layers[1]!.digest}\\): `));
  t.is(layer2.digest, manifest.layers[1]!.digest);
});

test('verify: a manifest annotation edited after signing fails the signature', async (t) => {
  const dir = tempDir(t);
  await buildImage(join(dir, 'img'), LAYERS, { tag: 'v1' });
  await sealImage({ input: join(dir, 'img:v1'), output: join(dir, 'img'), signer: await signer() });
  await rewrite(join(dir, 'img'), 'v1', (m) => { m.annotations!['org.example.built-by'] = 'mallory'; });
  const result = await verify(join(dir, 'img:v1'));
  t.false(result.ok);
  const signature = result.checks.find((c) => c.check === 'signature')!;
  t.is(signature.status, 'failed');
  t.regex(signature.detail, /^signature check failed: .*does not verify/);
});

test('verify: the layer list edited and re-signed by an untrusted key fails the chain and the layer', async (t) => {
  const dir = tempDir(t);
  const other = await createPki('Mallory');
  await buildImage(join(dir, 'img'), LAYERS, { tag: 'v1' });
  await sealImage({ input: join(dir, 'img:v1'), output: join(dir, 'img'), signer: await signer() });
  const forger = createSigner({ key: other.leaves.p256.keyPem, cert: other.leaves.p256.certPem, chain: other.intermediate.certPem + other.root.certPem });
  await rewrite(join(dir, 'img'), 'v1', (m) => {
    const hashes = m.annotations![LAYER_ROOT_HASHES_ANNOTATION]!.split(',');
    hashes[0] = 'f'.repeat(64);
    m.annotations![LAYER_ROOT_HASHES_ANNOTATION] = hashes.join(',');
    Object.assign(m.annotations!, bundleAnnotations(signMessage(forger, signedMessage(m))));
  });
  const result = await verify(join(dir, 'img:v1'));
  t.false(result.ok);
  t.deepEqual(statuses(result), [
    'bundle: ok', 'chain: failed', 'signature: ok', 'layer-root-hashes: ok', 'layer 1: failed', 'layer 2: ok', 'image-root-hash: ok',
  ]);
  t.regex(result.checks[1]!.detail, /^trust-anchor check failed: .*"CN=Mallory Root CA".*not one of the 1 trust root/);
  t.regex(result.checks.find((c) => c.layer === 1)!.detail, /signed list says f{64}/);
});

test('verify: an edited (unsigned) layer annotation is caught by recomputing', async (t) => {
  const dir = tempDir(t);
  await buildImage(join(dir, 'img'), LAYERS, { tag: 'v1' });
  await sealImage({ input: join(dir, 'img:v1'), output: join(dir, 'img'), signer: await signer() });
  await rewrite(join(dir, 'img'), 'v1', (m) => { m.layers[0]!.annotations![DM_VERITY_ROOT_HASH_ANNOTATION] = '0'.repeat(64); });
  const result = await verify(join(dir, 'img:v1'));
  t.deepEqual(statuses(result).slice(0, 5), ['bundle: ok', 'chain: ok', 'signature: ok', 'layer-root-hashes: ok', 'layer 1: failed']);
  t.regex(result.checks.find((c) => c.layer === 1)!.detail, /layer annotation io.deckhouse.delivery-kit.dm-verity-root-hash says 0{64}/);
});

test('verify: an unsigned image fails with "not signed"; a Delivery Kit style image without our list skips that check', async (t) => {
  const dir = tempDir(t);
  await buildImage(join(dir, 'img'), LAYERS, { tag: 'v1' });
  const unsigned = await verify(join(dir, 'img:v1'));
  t.false(unsigned.ok);
  t.regex(unsigned.checks[0]!.detail, /not signed/);
  t.deepEqual(statuses(unsigned), ['bundle: failed', 'chain: skipped', 'signature: skipped', 'layer-root-hashes: skipped', 'layer 1: ok', 'layer 2: ok', 'image-root-hash: skipped']);

  await sealImage({ input: join(dir, 'img:v1'), output: join(dir, 'img'), signer: await signer() });
  const s = await signer('ed25519');
  await rewrite(join(dir, 'img'), 'v1', (m) => {
    delete m.annotations![LAYER_ROOT_HASHES_ANNOTATION];
    Object.assign(m.annotations!, bundleAnnotations(signMessage(s, signedMessage(m))));
  });
  const dk = await verify(join(dir, 'img:v1'));
  t.true(dk.ok);
  t.is(dk.checks.find((c) => c.check === 'layer-root-hashes')!.status, 'skipped');
});

test('seal in place, then re-seal: the tag moves to the new manifest, the bundle is replaced', async (t) => {
  const dir = tempDir(t);
  const built = await buildImage(join(dir, 'img'), LAYERS, { tag: 'v1' });
  const first = await sealImage({ input: join(dir, 'img:v1'), output: join(dir, 'img'), signer: await signer() });
  const second = await sealImage({ input: join(dir, 'img:v1'), output: join(dir, 'img'), signer: await signer('rsa2048') });
  t.not(first.descriptor.digest, second.descriptor.digest);
  t.deepEqual(second.layerRootHashes, first.layerRootHashes);
  const index = await (await OciLayout.open(join(dir, 'img'))).readIndex();
  t.deepEqual(index.manifests.map((m) => m.digest), [second.descriptor.digest]);
  t.true(existsSync((await OciLayout.open(join(dir, 'img'))).blobPath(built.descriptor.digest)), 'old blobs are left alone');
  t.true((await verify(join(dir, 'img:v1'))).ok);
});

test('seal: refused before writing anything — non-tar layers, a chain the trust roots do not accept', async (t) => {
  const dir = tempDir(t);
  await buildImage(join(dir, 'in'), LAYERS, { tag: 'v1' });
  const input = await openLayoutImage(join(dir, 'in:v1'));
  await input.layout.addManifest(input.descriptor, 'foreign');
  await rewrite(join(dir, 'in'), 'foreign', (m) => { m.layers[1]!.mediaType = 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'; });
  await t.throwsAsync(sealImage({ input: join(dir, 'in:foreign'), output: join(dir, 'out1'), signer: await signer() }), {
    instanceOf: InvalidArgumentError, message: /layer 2 .* is not a tar layer/,
  });
  t.false(existsSync(join(dir, 'out1')));
  const other = await createPki('Elsewhere');
  await t.throwsAsync(sealImage({ input: join(dir, 'in:v1'), output: join(dir, 'out2'), signer: await signer(), trustRoots: [other.root.cert] }), {
    instanceOf: SignatureError, message: /trust-anchor check failed/,
  });
  t.false(existsSync(join(dir, 'out2')));
});

test('seal: an output directory that is not a layout is refused before any conversion, and left as it was', async (t) => {
  const dir = tempDir(t);
  await buildImage(join(dir, 'in'), LAYERS, { tag: 'v1' });
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  const progress: number[] = [];
  await t.throwsAsync(sealImage({ input: join(dir, 'in:v1'), output: dir, signer: await signer(), onProgress: (done) => progress.push(done) }), {
    instanceOf: InvalidArgumentError, message: /exists and is not an OCI image layout/,
  });
  t.deepEqual(progress, []);
  t.is(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine');
  t.false(existsSync(join(dir, 'oci-layout')));
});
