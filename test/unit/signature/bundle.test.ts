import test from 'ava';
import { createPublicKey, verify, constants } from 'node:crypto';
import {
  bundleAnnotations,
  createSigner,
  hasBundle,
  parseBundle,
  signMessage,
  verifyBundle,
  type SignatureBundle,
} from '../../../snapshotter/signature/bundle.js';
import { SignatureCheckError, type SignatureCheck } from '../../../snapshotter/signature/errors.js';
import { signedMessage } from '../../../snapshotter/signature/payload.js';
import { x509 } from '../../../snapshotter/signature/x509.js';
import { CERT_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION } from '../../../snapshotter/oci/annotations.js';
import type { ImageManifest } from '../../../snapshotter/oci/types.js';
import { createPki, issue, KEY_ALGORITHMS, type Issued, type KeyAlgorithm } from '../../support/pki.js';

const pki = createPki();
const MESSAGE = '3f'.repeat(32);

function signerOf(leaf: Issued, chain: Issued[]) {
  return createSigner({ key: leaf.keyPem, cert: leaf.certPem, chain: chain.map((c) => c.certPem).join('') });
}

function roundTrip(bundle: SignatureBundle): SignatureBundle {
  return parseBundle(bundleAnnotations(bundle), 'test image');
}

async function refusal(t: import('ava').ExecutionContext, promise: Promise<unknown>, check: SignatureCheck, text: RegExp) {
  const err = await t.throwsAsync(promise, { instanceOf: SignatureCheckError });
  t.is((err as SignatureCheckError).check, check, err?.message);
  t.regex(err!.message, text);
  t.truthy((err as SignatureCheckError).hint);
}

for (const algorithm of KEY_ALGORITHMS) {
  test(`round trip: ${algorithm} signs, annotations parse back, chain and signature verify`, async (t) => {
    const { root, intermediate, leaves } = await pki;
    const signer = signerOf(leaves[algorithm], [intermediate, root]);
    const bundle = roundTrip(signMessage(signer, MESSAGE));
    const verified = await verifyBundle(bundle, MESSAGE, [root.cert], 'test image');
    t.deepEqual(verified.path.certificates.map((c) => c.subject), [leaves[algorithm].cert.subject, intermediate.cert.subject, root.cert.subject]);
    t.is(verified.scheme, signer.scheme);
  });
}

// Checked with node:crypto directly, so the scheme is pinned independently of verifySignature.
const schemes: Record<KeyAlgorithm, (key: ReturnType<typeof createPublicKey>, sig: Buffer) => boolean> = {
  p256: (key, sig) => verify('sha256', Buffer.from(MESSAGE), key, sig) && sig[0] === 0x30,
  // P-384 still hashes the message with SHA-256 (sigstore signers are built with crypto.SHA256).
  p384: (key, sig) => verify('sha256', Buffer.from(MESSAGE), key, sig) && !verify('sha384', Buffer.from(MESSAGE), key, sig),
  rsa2048: (key, sig) => verify('sha256', Buffer.from(MESSAGE), { key, padding: constants.RSA_PKCS1_PADDING }, sig),
  // Ed25519 signs the 64 ASCII bytes themselves.
  ed25519: (key, sig) => verify(null, Buffer.from(MESSAGE, 'ascii'), key, sig) && sig.length === 64,
};

for (const algorithm of KEY_ALGORITHMS) {
  test(`scheme: ${algorithm} signature is what Delivery Kit makes`, async (t) => {
    const { root, intermediate, leaves } = await pki;
    const bundle = signMessage(signerOf(leaves[algorithm], [intermediate, root]), MESSAGE);
    const key = createPublicKey({ key: Buffer.from(leaves[algorithm].cert.publicKey.rawData), format: 'der', type: 'spki' });
    t.true(schemes[algorithm](key, bundle.signature));
  });
}

test('annotations: standard base64 of PEM leaf and PEM chain', async (t) => {
  const { root, intermediate, leaves } = await pki;
  const annotations = bundleAnnotations(signMessage(signerOf(leaves.p256, [intermediate, root]), MESSAGE));
  const cert = Buffer.from(annotations[CERT_ANNOTATION]!, 'base64').toString();
  t.regex(cert, /^-----BEGIN CERTIFICATE-----\n([A-Za-z0-9+/=]{64}\n)+[A-Za-z0-9+/=]{1,64}\n-----END CERTIFICATE-----\n$/);
  const chain = Buffer.from(annotations[CHAIN_ANNOTATION]!, 'base64').toString();
  t.is(chain.match(/BEGIN CERTIFICATE/g)?.length, 2);
  t.regex(annotations[SIGNATURE_ANNOTATION]!, /^[A-Za-z0-9+/]+=*$/);
});

test('annotations: no chain gives an empty chain annotation, which parses back', async (t) => {
  const { root } = await pki;
  const direct = await issue({ subject: 'CN=direct', issuer: root });
  const annotations = bundleAnnotations(signMessage(signerOf(direct, []), MESSAGE));
  t.is(annotations[CHAIN_ANNOTATION], '');
  await t.notThrowsAsync(verifyBundle(parseBundle(annotations, 'x'), MESSAGE, [root.cert], 'x'));
});

test('cert given as base64 of DER works', async (t) => {
  const { root, intermediate, leaves } = await pki;
  const annotations = bundleAnnotations(signMessage(signerOf(leaves.p256, [intermediate, root]), MESSAGE));
  annotations[CERT_ANNOTATION] = Buffer.from(leaves.p256.cert.rawData).toString('base64');
  await t.notThrowsAsync(verifyBundle(parseBundle(annotations, 'x'), MESSAGE, [root.cert], 'x'));
});

test('refused: signature over a different message', async (t) => {
  const { root, intermediate, leaves } = await pki;
  const bundle = signMessage(signerOf(leaves.ed25519, [intermediate]), MESSAGE);
  await refusal(t, verifyBundle(bundle, '40'.repeat(32), [root.cert], 'image x'), 'signature', /^image x: signature check failed/);
});

test('refused: manifest annotation edited after signing', async (t) => {
  const { root, intermediate, leaves } = await pki;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 10 },
    layers: [],
    annotations: { 'io.containerd-integrity.layer-root-hashes': '2'.repeat(64) },
  };
  const bundle = signMessage(signerOf(leaves.p384, [intermediate]), signedMessage(manifest));
  manifest.annotations!['io.containerd-integrity.layer-root-hashes'] = '3'.repeat(64);
  await refusal(t, verifyBundle(bundle, signedMessage(manifest), [root.cert], 'image y'), 'signature', /does not verify/);
});

test('refused: chain to a CA that is not a trust root', async (t) => {
  const { root, intermediate, leaves } = await pki;
  const other = await createPki('Other');
  const bundle = roundTrip(signMessage(signerOf(other.leaves.p256, [other.intermediate, other.root]), MESSAGE));
  await refusal(t, verifyBundle(bundle, MESSAGE, [root.cert], 'x'), 'trust-anchor', /ends at root "CN=Other Root CA".*not one of the 1 trust root/);
  // Without the foreign root in the bundle, the path ends at an unknown issuer.
  const short = roundTrip(signMessage(signerOf(other.leaves.p256, [other.intermediate]), MESSAGE));
  await refusal(t, verifyBundle(short, MESSAGE, [root.cert], 'x'), 'trust-anchor', /no issuer certificate for "CN=Other Root CA"/);
  // And our own root still works for our own leaf, next to the other root.
  const ours = signMessage(signerOf(leaves.p256, [intermediate]), MESSAGE);
  await t.notThrowsAsync(verifyBundle(ours, MESSAGE, [other.root.cert, root.cert], 'x'));
});

test('refused: no trust roots at all', async (t) => {
  const { intermediate, leaves } = await pki;
  const bundle = signMessage(signerOf(leaves.p256, [intermediate]), MESSAGE);
  await refusal(t, verifyBundle(bundle, MESSAGE, [], 'x'), 'trust-anchor', /no trust roots/);
});

test('refused: an intermediate that is not a CA', async (t) => {
  const { root } = await pki;
  for (const ca of [false, 'omit'] as const) {
    const notCa = await issue({ subject: 'CN=Not a CA', issuer: root, ca, keyUsage: null });
    const leaf = await issue({ subject: 'CN=leaf', issuer: notCa });
    const bundle = signMessage(signerOf(leaf, [notCa]), MESSAGE);
    await refusal(t, verifyBundle(bundle, MESSAGE, [root.cert], 'x'), 'ca-constraint', /"CN=Not a CA".* is not a CA/);
  }
});

test('refused: an issuer whose keyUsage lacks keyCertSign', async (t) => {
  const { root } = await pki;
  const noSign = await issue({ subject: 'CN=No certSign', issuer: root, ca: true, keyUsage: x509.KeyUsageFlags.digitalSignature });
  const leaf = await issue({ subject: 'CN=leaf', issuer: noSign });
  await refusal(t, verifyBundle(signMessage(signerOf(leaf, [noSign]), MESSAGE), MESSAGE, [root.cert], 'x'), 'ca-constraint', /keyCertSign/);
});

test('refused: an intermediate not valid at the leaf NotBefore', async (t) => {
  const { root } = await pki;
  const DAY = 86400_000;
  const now = Date.now();
  // Expired before the leaf was issued ...
  const expired = await issue({ subject: 'CN=Expired CA', issuer: root, ca: true, notBefore: new Date(now - 100 * DAY), notAfter: new Date(now - 50 * DAY) });
  const leaf1 = await issue({ subject: 'CN=leaf', issuer: expired, notBefore: new Date(now - 10 * DAY) });
  await refusal(t, verifyBundle(signMessage(signerOf(leaf1, [expired]), MESSAGE), MESSAGE, [root.cert], 'x'), 'validity', /"CN=Expired CA".*not at the leaf's NotBefore/);
  // ... or not yet valid when the leaf was issued.
  const future = await issue({ subject: 'CN=Future CA', issuer: root, ca: true, notBefore: new Date(now + 10 * DAY) });
  const leaf2 = await issue({ subject: 'CN=leaf', issuer: future, notBefore: new Date(now) });
  await refusal(t, verifyBundle(signMessage(signerOf(leaf2, [future]), MESSAGE), MESSAGE, [root.cert], 'x'), 'validity', /"CN=Future CA"/);
});

test('accepted: a leaf that has expired since it signed (validation at its NotBefore)', async (t) => {
  const { root, intermediate } = await pki;
  const DAY = 86400_000;
  const old = await issue({ subject: 'CN=old signer', issuer: intermediate, notBefore: new Date(Date.now() - 20 * DAY), notAfter: new Date(Date.now() - 10 * DAY) });
  await t.notThrowsAsync(verifyBundle(signMessage(signerOf(old, [intermediate]), MESSAGE), MESSAGE, [root.cert], 'x'));
});

test('refused: pathLenConstraint violated', async (t) => {
  const { root, intermediate } = await pki;
  // intermediate has pathLen 0: it may not issue another CA that issues the leaf.
  const sub = await issue({ subject: 'CN=Sub CA', issuer: intermediate, ca: true });
  const leaf = await issue({ subject: 'CN=leaf', issuer: sub });
  await refusal(t, verifyBundle(signMessage(signerOf(leaf, [sub, intermediate]), MESSAGE), MESSAGE, [root.cert], 'x'), 'ca-constraint', /"CN=Test Intermediate CA".*pathLenConstraint/);
});

test('refused: SHA-1 signed certificates, leaf or root', async (t) => {
  const { root, intermediate } = await pki;
  const leaf = await issue({ subject: 'CN=sha1 leaf', issuer: intermediate, signatureHash: 'SHA-1' });
  await refusal(t, verifyBundle(signMessage(signerOf(leaf, [intermediate]), MESSAGE), MESSAGE, [root.cert], 'x'), 'digest-algorithm', /"CN=sha1 leaf".*SHA-1/);
  const sha1Root = await issue({ subject: 'CN=SHA-1 Root', ca: true, algorithm: 'rsa2048', rsaHash: 'SHA-1' });
  const leaf2 = await issue({ subject: 'CN=leaf', issuer: sha1Root, signatureHash: 'SHA-256' });
  t.is(leaf2.cert.signatureAlgorithm.hash?.name, 'SHA-1', 'an RSA issuer signs with its key hash');
  await refusal(t, verifyBundle(signMessage(signerOf(leaf2, []), MESSAGE), MESSAGE, [sha1Root.cert], 'x'), 'digest-algorithm', /SHA-1/);
});

test('refused: empty or garbled base64, and non-certificates', async (t) => {
  const { root, intermediate, leaves } = await pki;
  const good = bundleAnnotations(signMessage(signerOf(leaves.p256, [intermediate]), MESSAGE));
  const cases: [string, string, RegExp][] = [
    [SIGNATURE_ANNOTATION, '', /signature is empty/],
    [CERT_ANNOTATION, '', /cert is empty/],
    [SIGNATURE_ANNOTATION, 'not base64!', /signature is not standard base64/],
    [CERT_ANNOTATION, 'QUJD', /not an X.509 certificate/],
    [CERT_ANNOTATION, Buffer.from('-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n').toString('base64'), /PRIVATE KEY/],
    [CHAIN_ANNOTATION, 'QUJD', /chain holds no PEM certificate/],
    [CHAIN_ANNOTATION, 'QUJD=', /chain is not standard base64/],
  ];
  for (const [key, value, text] of cases) {
    const annotations = { ...good, [key]: value };
    const err = t.throws(() => parseBundle(annotations, 'img'), { instanceOf: SignatureCheckError }, `${key}=${value}`);
    t.is((err as SignatureCheckError).check, 'bundle');
    t.regex(err!.message, text);
  }
  const unsigned = t.throws(() => parseBundle({}, 'img'), { instanceOf: SignatureCheckError });
  t.regex(unsigned!.message, /not signed/);
  // A garbled signature that still decodes is a signature failure, not a crash.
  const garbled = parseBundle({ ...good, [SIGNATURE_ANNOTATION]: 'AAAA' }, 'img');
  await refusal(t, verifyBundle(garbled, MESSAGE, [root.cert], 'img'), 'signature', /does not verify/);
});

test('createSigner refuses a key that does not belong to the certificate', async (t) => {
  const { leaves } = await pki;
  t.throws(() => createSigner({ key: leaves.p384.keyPem, cert: leaves.p256.certPem }), { message: /does not belong to certificate/ });
  t.throws(() => createSigner({ key: 'junk', cert: leaves.p256.certPem }), { message: /not an unencrypted PEM private key/ });
});

test('hasBundle: any of the three keys marks a manifest as signed (or half-signed)', (t) => {
  t.false(hasBundle(undefined));
  t.false(hasBundle({ 'org.example': 'x' }));
  t.true(hasBundle({ [CHAIN_ANNOTATION]: '' }));
  t.true(hasBundle({ [SIGNATURE_ANNOTATION]: 'AAAA' }));
});
