/**
 * Delivery Kit's signature bundle: three manifest annotations (or the same
 * three keys as a JSON object, the form Delivery Kit embeds in signed binaries).
 *
 * - signature: standard base64 of the signature over the 64-byte ASCII hex
 *   message. ECDSA (P-256, P-384): DER, over SHA-256 of the message.
 *   RSA: PKCS#1 v1.5 over SHA-256 of the message. Ed25519: over the message itself.
 * - cert: standard base64 of the leaf certificate in PEM (DER accepted when reading).
 * - chain: standard base64 of PEM intermediates (Delivery Kit appends the root); may be empty.
 *
 * Fact source: deckhouse/delivery-kit-sdk pkg/signature/bundle.go,
 * pkg/signver (sigstore signers with crypto.SHA256).
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { InvalidArgumentError } from '../core/errors.js';
import { BUNDLE_ANNOTATIONS, CERT_ANNOTATION, CHAIN_ANNOTATION, SIGNATURE_ANNOTATION } from '../oci/annotations.js';
import type { Annotations } from '../oci/types.js';
import { verifyChain, type CertificationPath } from './chain.js';
import { SignatureCheckError } from './errors.js';
import { isSignedMessage } from './payload.js';
import { encodePemCertificates, looksLikePem, parseDerCertificate, parsePemCertificates } from './pem.js';
import type { X509Certificate } from './x509.js';

export interface SignatureBundle {
  signature: Buffer;
  leaf: X509Certificate;
  /** Candidate intermediates in bundle order (may include Delivery Kit's copy of the root). */
  chain: X509Certificate[];
}

export type SignatureScheme = 'ECDSA P-256 SHA-256' | 'ECDSA P-384 SHA-256' | 'RSA PKCS#1 v1.5 SHA-256' | 'Ed25519';

export interface VerifiedSignature {
  scheme: SignatureScheme;
  path: CertificationPath;
}

/** A private key with its certificate and chain, ready to sign messages. */
export interface Signer {
  key: KeyObject;
  scheme: SignatureScheme;
  leaf: X509Certificate;
  chain: X509Certificate[];
}

/** Whether any of the three bundle annotations is present (a signed, or half-signed, manifest). */
export function hasBundle(annotations: Annotations | undefined): boolean {
  return BUNDLE_ANNOTATIONS.some((key) => annotations?.[key] !== undefined);
}

/**
 * Reads the bundle from manifest annotations or a bundle JSON object.
 * Signature and cert are required and non-empty; chain may be absent or empty.
 */
export function parseBundle(annotations: Annotations | undefined, subject: string): SignatureBundle {
  const fail = (detail: string, hint: string, cause?: unknown) => new SignatureCheckError(subject, 'bundle', detail, { hint, cause });
  const signatureText = annotations?.[SIGNATURE_ANNOTATION];
  const certText = annotations?.[CERT_ANNOTATION];
  if (signatureText === undefined && certText === undefined) {
    throw fail(`not signed: the ${SIGNATURE_ANNOTATION} and ${CERT_ANNOTATION} annotations are absent`,
      'sign the image (Delivery Kit, or `integrityctl image seal`) and push it again');
  }
  const signature = decodeBase64(signatureText, SIGNATURE_ANNOTATION, fail);
  const certBytes = decodeBase64(certText, CERT_ANNOTATION, fail);
  const chainText = annotations?.[CHAIN_ANNOTATION] ?? '';
  const chainBytes = chainText === '' ? Buffer.alloc(0) : decodeBase64(chainText, CHAIN_ANNOTATION, fail);

  let leaf: X509Certificate;
  let chain: X509Certificate[];
  try {
    if (looksLikePem(certBytes)) {
      const certs = parsePemCertificates(certBytes.toString('latin1'), CERT_ANNOTATION);
      if (certs.length !== 1) throw new Error(`${CERT_ANNOTATION} holds ${certs.length} certificates, expected exactly one`);
      leaf = certs[0]!;
    } else {
      leaf = parseDerCertificate(certBytes, CERT_ANNOTATION);
    }
    // Delivery Kit accepts only PEM for the chain.
    chain = chainBytes.length === 0 ? [] : parsePemCertificates(chainBytes.toString('latin1'), CHAIN_ANNOTATION);
    if (chainBytes.length > 0 && chain.length === 0) throw new Error(`${CHAIN_ANNOTATION} holds no PEM certificate`);
  } catch (err) {
    throw fail((err as Error).message, 'the bundle must carry the leaf certificate (PEM or DER) and PEM intermediates, base64-encoded', err);
  }
  return { signature, leaf, chain };
}

/** The bundle as the three annotations, the way Delivery Kit writes them. */
export function bundleAnnotations(bundle: SignatureBundle): Annotations {
  return {
    [SIGNATURE_ANNOTATION]: bundle.signature.toString('base64'),
    [CERT_ANNOTATION]: Buffer.from(encodePemCertificates([bundle.leaf])).toString('base64'),
    [CHAIN_ANNOTATION]: bundle.chain.length === 0 ? '' : Buffer.from(encodePemCertificates(bundle.chain)).toString('base64'),
  };
}

/**
 * A signer from PEM texts: a PKCS#8 (or SEC1/PKCS#1) private key, its certificate
 * and optional chain. Refuses a key that does not match the certificate, as
 * Delivery Kit does, so a bundle never names someone else's certificate.
 */
export function createSigner(pems: { key: string; cert: string; chain?: string }): Signer {
  const bad = (what: string, err: unknown) => new InvalidArgumentError(`${what}: ${(err as Error).message}`, { cause: err, hint: 'pass PEM files' });
  let key: KeyObject;
  try {
    key = createPrivateKey(pems.key);
  } catch (err) {
    throw bad('signing key is not an unencrypted PEM private key', err);
  }
  let leaf: X509Certificate;
  let chain: X509Certificate[];
  try {
    const certs = parsePemCertificates(pems.cert, 'certificate file');
    if (certs.length === 0) throw new Error('no certificate in it');
    leaf = certs[0]!;
    chain = pems.chain === undefined ? [] : parsePemCertificates(pems.chain, 'chain file');
  } catch (err) {
    throw bad('certificate', err);
  }
  const certKey = Buffer.from(leaf.publicKey.rawData);
  const ownKey = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!certKey.equals(ownKey)) {
    throw new InvalidArgumentError(`the signing key does not belong to certificate ${JSON.stringify(leaf.subject)}`, {
      hint: 'pass the private key of the --cert certificate',
    });
  }
  const scheme = signatureScheme(createPublicKey(key), 'signing key', (detail) => new InvalidArgumentError(detail, {
    hint: 'use an ECDSA P-256/P-384, RSA (2048 bits or more) or Ed25519 key',
  }));
  return { key, scheme, leaf, chain };
}

export function signMessage(signer: Signer, message: string): SignatureBundle {
  if (!isSignedMessage(message)) throw new InvalidArgumentError(`message ${JSON.stringify(message)} is not 64 lowercase hex digits`);
  const data = Buffer.from(message, 'ascii');
  const signature = sign(signer.scheme === 'Ed25519' ? null : 'sha256', data, signer.key);
  return { signature, leaf: signer.leaf, chain: signer.chain };
}

/** Checks the signature alone (not the chain) over `message` with the leaf's key. */
export function verifySignature(bundle: SignatureBundle, message: string, subject: string): SignatureScheme {
  const fail = (check: 'signature' | 'digest-algorithm', detail: string, hint: string) =>
    new SignatureCheckError(subject, check, detail, { hint });
  if (!isSignedMessage(message)) {
    throw new SignatureCheckError(subject, 'payload', `message ${JSON.stringify(message)} is not 64 lowercase hex digits`, {
      hint: 'the signed message is the hex SHA-256 of the manifest payload',
    });
  }
  const key = createPublicKey({ key: Buffer.from(bundle.leaf.publicKey.rawData), format: 'der', type: 'spki' });
  const scheme = signatureScheme(key, `certificate ${JSON.stringify(bundle.leaf.subject)}`, (detail) =>
    fail('digest-algorithm', detail, 'sign with an ECDSA P-256/P-384, RSA (2048 bits or more) or Ed25519 certificate'));
  let ok: boolean;
  try {
    ok = verify(scheme === 'Ed25519' ? null : 'sha256', Buffer.from(message, 'ascii'), key, bundle.signature);
  } catch {
    ok = false; // a malformed DER signature throws; to the caller it is just a wrong signature
  }
  if (!ok) {
    throw fail('signature', `the ${scheme} signature does not verify with the key of ${JSON.stringify(bundle.leaf.subject)} over message ${message}`,
      'the manifest was changed after signing, or the signature belongs to another manifest; sign the image again');
  }
  return scheme;
}

/** The whole check: chain to a trust root at the leaf's NotBefore, then the signature. */
export async function verifyBundle(
  bundle: SignatureBundle,
  message: string,
  trustRoots: readonly X509Certificate[],
  subject: string,
): Promise<VerifiedSignature> {
  const path = await verifyChain(bundle.leaf, bundle.chain, trustRoots, subject);
  const scheme = verifySignature(bundle, message, subject);
  return { scheme, path };
}

function signatureScheme(key: KeyObject, what: string, refuse: (detail: string) => Error): SignatureScheme {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case 'ec':
      if (details.namedCurve === 'prime256v1') return 'ECDSA P-256 SHA-256';
      if (details.namedCurve === 'secp384r1') return 'ECDSA P-384 SHA-256';
      throw refuse(`${what} is an ECDSA key on curve ${details.namedCurve}; only P-256 and P-384 are accepted`);
    case 'rsa':
      if ((details.modulusLength ?? 0) < 2048) throw refuse(`${what} is a ${details.modulusLength}-bit RSA key; at least 2048 bits are required`);
      return 'RSA PKCS#1 v1.5 SHA-256';
    case 'ed25519':
      return 'Ed25519';
    default:
      throw refuse(`${what} is a ${key.asymmetricKeyType} key; only ECDSA P-256/P-384, RSA PKCS#1 v1.5 and Ed25519 are accepted`);
  }
}

/** Standard base64 as Go's StdEncoding reads it: padding required, CR/LF ignored. */
function decodeBase64(value: string | undefined, key: string, fail: (detail: string, hint: string) => Error): Buffer {
  const hint = `${key} must be the standard (padded) base64 of the value; re-sign the image`;
  if (value === undefined) throw fail(`annotation ${key} is absent`, hint);
  const text = value.replace(/[\r\n]/g, '');
  if (text === '') throw fail(`annotation ${key} is empty`, hint);
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw fail(`annotation ${key} is not standard base64`, hint);
  return Buffer.from(text, 'base64');
}
