/**
 * Test PKI, generated fresh by every test run (no private key is committed):
 * keys from node:crypto's WebCrypto, certificates from @peculiar/x509's
 * generator. `createPki()` gives a root CA, an intermediate CA and one leaf per
 * signing algorithm Delivery Kit supports; `issue()` makes odd certificates for
 * refusal tests (not a CA, expired, SHA-1, pathLen ...).
 *
 * Reused by end-to-end tests: `writePkiFiles()` puts PEM files on disk for
 * `integrityctl image seal --key --cert --chain` and `--trust`.
 */
import { randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { x509, type X509Certificate } from '../../snapshotter/signature/x509.js';

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CertificateParams = Parameters<typeof x509.X509CertificateGenerator.create>[0];

export type KeyAlgorithm = 'p256' | 'p384' | 'rsa2048' | 'ed25519';
export const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['p256', 'p384', 'rsa2048', 'ed25519'];

export interface Issued {
  cert: X509Certificate;
  keys: CryptoKeyPair;
  algorithm: KeyAlgorithm;
  certPem: string;
  /** PKCS#8 PEM ("PRIVATE KEY"), as Delivery Kit and `image seal --key` take it. */
  keyPem: string;
}

export interface IssueOptions {
  subject: string;
  /** Self-signed when absent. */
  issuer?: Issued;
  algorithm?: KeyAlgorithm;
  /** true or { pathLength }: a CA certificate. false: basicConstraints cA=false. 'omit': no basicConstraints at all. */
  ca?: boolean | { pathLength: number } | 'omit';
  /** Key usage flags; null omits the extension. Default: keyCertSign|cRLSign for CAs, digitalSignature otherwise. */
  keyUsage?: number | null;
  notBefore?: Date;
  notAfter?: Date;
  /** Subject alternative names, e.g. [{ type: 'ip', value: '127.0.0.1' }] for a TLS server certificate. */
  altNames?: Array<{ type: 'ip' | 'dns'; value: string }>;
  /** Hash the issuer signs with when its key allows a choice (ECDSA); RSA issuers sign with their key's hash. */
  signatureHash?: 'SHA-1' | 'SHA-256' | 'SHA-384';
  /** For an RSA key: the hash bound to it (WebCrypto fixes it per key); SHA-1 makes a SHA-1-signing RSA CA. */
  rsaHash?: 'SHA-1' | 'SHA-256';
}

const DAY = 24 * 3600 * 1000;

export async function generateKeys(algorithm: KeyAlgorithm, rsaHash: 'SHA-1' | 'SHA-256' = 'SHA-256'): Promise<CryptoKeyPair> {
  const subtle = webcrypto.subtle;
  const params = {
    p256: { name: 'ECDSA', namedCurve: 'P-256' },
    p384: { name: 'ECDSA', namedCurve: 'P-384' },
    rsa2048: { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: rsaHash },
    ed25519: { name: 'Ed25519' },
  }[algorithm];
  return (await subtle.generateKey(params, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export async function issue(options: IssueOptions): Promise<Issued> {
  const algorithm = options.algorithm ?? 'p256';
  const keys = await generateKeys(algorithm, options.rsaHash);
  const signer = options.issuer ?? { keys, algorithm, cert: undefined };
  const ca = options.ca ?? false;
  const isCa = ca === true || typeof ca === 'object';
  const extensions: x509.Extension[] = [];
  if (ca !== 'omit') {
    extensions.push(new x509.BasicConstraintsExtension(isCa, typeof ca === 'object' ? ca.pathLength : undefined, true));
  }
  const keyUsage = options.keyUsage === undefined
    ? (isCa ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : x509.KeyUsageFlags.digitalSignature)
    : options.keyUsage;
  if (keyUsage !== null) extensions.push(new x509.KeyUsagesExtension(keyUsage, true));
  if (options.altNames) extensions.push(new x509.SubjectAlternativeNameExtension(options.altNames));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  extensions.push(await x509.AuthorityKeyIdentifierExtension.create(signer.keys.publicKey));

  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: `01${randomBytes(8).toString('hex')}`,
    subject: options.subject,
    issuer: options.issuer ? options.issuer.cert.subject : options.subject,
    notBefore: options.notBefore ?? new Date(now - 30 * DAY),
    notAfter: options.notAfter ?? new Date(now + 3650 * DAY),
    publicKey: keys.publicKey,
    signingKey: signer.keys.privateKey,
    signingAlgorithm: signingAlgorithm(signer.algorithm, options.signatureHash),
    extensions,
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  return {
    cert,
    keys,
    algorithm,
    certPem: `${cert.toString('pem')}\n`,
    keyPem: `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n?$/, '\n')}-----END PRIVATE KEY-----\n`,
  };
}

function signingAlgorithm(issuer: KeyAlgorithm, hash: IssueOptions['signatureHash']): CertificateParams['signingAlgorithm'] {
  switch (issuer) {
    case 'p256':
    case 'p384':
      return { name: 'ECDSA', hash: hash ?? 'SHA-256' };
    case 'rsa2048':
      return { name: 'RSASSA-PKCS1-v1_5' };
    case 'ed25519':
      return { name: 'Ed25519' };
  }
}

export interface Pki {
  root: Issued;
  intermediate: Issued;
  leaves: Record<KeyAlgorithm, Issued>;
}

/** Root CA → intermediate CA (pathLen 0) → one leaf per algorithm. */
export async function createPki(name = 'Test'): Promise<Pki> {
  const root = await issue({ subject: `CN=${name} Root CA`, ca: true });
  const intermediate = await issue({ subject: `CN=${name} Intermediate CA`, issuer: root, ca: { pathLength: 0 } });
  const leaves = {} as Record<KeyAlgorithm, Issued>;
  for (const algorithm of KEY_ALGORITHMS) {
    leaves[algorithm] = await issue({ subject: `CN=${name} signer ${algorithm}`, issuer: intermediate, algorithm });
  }
  return { root, intermediate, leaves };
}

export interface PkiFiles {
  key: string;
  cert: string;
  /** The intermediate and the root, as Delivery Kit's --cert-chain holds them. */
  chain: string;
  /** The root alone: a trust file. */
  trust: string;
}

/** Writes the PEM files of `leaf` (default: P-256) into `dir`. */
export function writePkiFiles(pki: Pki, dir: string, leaf: KeyAlgorithm = 'p256'): PkiFiles {
  mkdirSync(dir, { recursive: true });
  const files: PkiFiles = { key: join(dir, 'signer.key'), cert: join(dir, 'signer.crt'), chain: join(dir, 'chain.pem'), trust: join(dir, 'root.pem') };
  writeFileSync(files.key, pki.leaves[leaf].keyPem, { mode: 0o600 });
  writeFileSync(files.cert, pki.leaves[leaf].certPem);
  writeFileSync(files.chain, pki.intermediate.certPem + pki.root.certPem);
  writeFileSync(files.trust, pki.root.certPem);
  return files;
}
