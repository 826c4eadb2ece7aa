import test from 'ava';
import { DM_VERITY_ROOT_HASH_ANNOTATION, LAYER_ROOT_HASHES_ANNOTATION } from '../../../snapshotter/oci/annotations.js';
import { MediaType, type ImageManifest } from '../../../snapshotter/oci/types.js';
import {
  checkConverted,
  decideLayer,
  reasonOfCheck,
  SIGNATURE_REFUSAL_REASONS,
  type LayerFacts,
} from '../../../snapshotter/policy/signature-policy.js';
import type { SignatureCheck } from '../../../snapshotter/signature/errors.js';

const H = (c: string) => c.repeat(64);
const D = (c: string) => `sha256:${c.repeat(64)}`;

function manifest(annotations?: Record<string, string>, layerAnnotations?: Record<string, string>): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    config: { mediaType: MediaType.imageConfig, digest: D('c'), size: 1 },
    layers: [
      { mediaType: MediaType.layerTarGzip, digest: D('1'), size: 1, ...(layerAnnotations ? { annotations: layerAnnotations } : {}) },
      { mediaType: MediaType.layerTarGzip, digest: D('2'), size: 1 },
    ],
    ...(annotations ? { annotations } : {}),
  };
}

const verified = { state: 'verified', signer: 'CN=Test signer' } as const;

function facts(overrides: Partial<LayerFacts>): LayerFacts {
  return { image: 'r/app:1', manifest: manifest(), index: 0, signature: { state: 'unsigned' }, requiredBy: undefined, ...overrides };
}

test('unsigned and not required: converted as any layer', (t) => {
  t.like(decideLayer(facts({})), { verdict: 'unprotected' });
});

test('unsigned but required: refused, naming the pattern and the fix', (t) => {
  const d = decideLayer(facts({ requiredBy: 'r/*' }));
  t.like(d, { verdict: 'refused', refusal: { reason: 'signature_missing', check: 'bundle' } });
  if (d.verdict !== 'refused') return;
  t.regex(d.refusal.detail, /not signed.*required_images.*"r\/\*"/);
  t.regex(d.refusal.hint, /sign the image/);
});

test('a failed signature check is refused with its check; a chain problem is an untrusted signer', (t) => {
  const d = decideLayer(facts({ signature: { state: 'failed', check: 'trust-anchor', detail: 'the path ends at root "CN=Rogue"', hint: 'add the root' } }));
  t.deepEqual(d, { verdict: 'refused', refusal: { reason: 'signer_untrusted', check: 'trust-anchor', detail: 'the path ends at root "CN=Rogue"', hint: 'add the root' } });
  const bad = decideLayer(facts({ signature: { state: 'failed', check: 'signature', detail: 'does not verify', hint: undefined }, requiredBy: undefined }));
  t.like(bad, { verdict: 'refused', refusal: { reason: 'signature_invalid', check: 'signature' } });
  if (bad.verdict === 'refused') t.regex(bad.refusal.hint, /seal the image again/, 'a hint is always given');
});

test('every signature check maps to a refusal reason the metric knows', (t) => {
  const checks: SignatureCheck[] = ['bundle', 'payload', 'signature', 'chain', 'ca-constraint', 'validity', 'trust-anchor', 'digest-algorithm'];
  for (const check of checks) t.true(SIGNATURE_REFUSAL_REASONS.includes(reasonOfCheck(check)), check);
  t.deepEqual(['chain', 'ca-constraint', 'validity', 'trust-anchor'].map((c) => reasonOfCheck(c as SignatureCheck)), Array(4).fill('signer_untrusted'));
});

test('signed with a list: the expected root hash is the entry at the layer index', (t) => {
  const m = manifest({ [LAYER_ROOT_HASHES_ANNOTATION]: `${H('a')},${H('b')}` });
  t.deepEqual(decideLayer(facts({ manifest: m, index: 1, signature: verified })), {
    verdict: 'protected',
    expected: { binding: 'signed-list', rootHash: H('b') },
    signer: 'CN=Test signer',
  });
});

test('signed without a list (Delivery Kit): bound by the digest; the unsigned layer annotation is ignored', (t) => {
  const m = manifest(undefined, { [DM_VERITY_ROOT_HASH_ANNOTATION]: H('f') });
  const d = decideLayer(facts({ manifest: m, signature: verified }));
  t.deepEqual(d, { verdict: 'protected', expected: { binding: 'signed-digest' }, signer: 'CN=Test signer' });
  if (d.verdict !== 'protected') return;
  t.deepEqual(checkConverted(d.expected, D('d'), { rootHash: H('e'), diffId: D('d') }), { rootHash: H('e') }, 'the recomputed value is the trusted one');
});

test('a signed list that is malformed or has the wrong length is refused', (t) => {
  for (const value of [`${H('a')}`, `${H('a')},XYZ`]) {
    const d = decideLayer(facts({ manifest: manifest({ [LAYER_ROOT_HASHES_ANNOTATION]: value }), signature: verified }));
    t.like(d, { verdict: 'refused', refusal: { reason: 'signature_invalid', check: 'layer-root-hashes' } }, value);
  }
});

test('after conversion: the signed root hash must match, and the content must be the signed diff ID', (t) => {
  const expected = { binding: 'signed-list', rootHash: H('a') } as const;
  t.deepEqual(checkConverted(expected, D('d'), { rootHash: H('a'), diffId: D('d') }), { rootHash: H('a') });
  const wrongHash = checkConverted(expected, D('d'), { rootHash: H('b'), diffId: D('d') });
  t.like(wrongHash, { refusal: { reason: 'root_hash_mismatch', check: 'root-hash' } });
  if ('refusal' in wrongHash) t.regex(wrongHash.refusal.detail, new RegExp(`converts to root hash ${H('b')}, its signed .* entry is ${H('a')}`));
  // The diff ID is checked first: other content makes its root hash meaningless.
  t.like(checkConverted(expected, D('d'), { rootHash: H('b'), diffId: D('e') }), { refusal: { reason: 'content_mismatch', check: 'diff-id' } });
  t.like(checkConverted({ binding: 'signed-digest' }, D('d'), { rootHash: H('b'), diffId: D('e') }), { refusal: { reason: 'content_mismatch' } });
});
