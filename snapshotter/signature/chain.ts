/**
 * The certification path from a signing (leaf) certificate to a trust root.
 *
 * Rules (Delivery Kit's, from delivery-kit-sdk pkg/signver/certificate.go,
 * made stricter where Go's x509 is lax):
 * - Validation time is the leaf's NotBefore, not now: a signature made while
 *   the certificate was valid stays valid after it expires (images are signed
 *   once and pulled for years). Every certificate in the path must be valid then.
 * - The anchor is one of the trust roots: the bundle chain is the candidate
 *   intermediates (Delivery Kit appends its root there; a copy of a trusted root
 *   is harmless, an untrusted root ends the path without an anchor).
 * - Every issuer is a CA (basicConstraints cA), may sign certificates
 *   (keyUsage keyCertSign when keyUsage is present — Go ignores this), and its
 *   pathLenConstraint holds.
 * - No certificate in the path, the anchor included, is signed with SHA-1 or
 *   another hash outside SHA-2.
 */
import type { SignatureCheck } from './errors.js';
import { SignatureCheckError } from './errors.js';
import { x509, type X509Certificate } from './x509.js';

/** Signature algorithms a certificate in the path may be signed with. */
const ACCEPTED_HASHES: ReadonlySet<string> = new Set(['SHA-256', 'SHA-384', 'SHA-512']);
const HASHLESS_ALGORITHMS: ReadonlySet<string> = new Set(['Ed25519', 'Ed448']);

export interface CertificationPath {
  /** Leaf first, anchor last. */
  certificates: X509Certificate[];
  anchor: X509Certificate;
  /** The leaf's NotBefore, the time the path was validated at. */
  validatedAt: Date;
}

const TRUST_HINT =
  'sign with a certificate issued under a trusted root, or add the issuing root CA (PEM) to the trust roots ' +
  '(/etc/containerd-integrity/trust.d/ on nodes, --trust for integrityctl)';

export async function verifyChain(
  leaf: X509Certificate,
  intermediates: readonly X509Certificate[],
  trustRoots: readonly X509Certificate[],
  subject: string,
): Promise<CertificationPath> {
  const fail = (check: SignatureCheck, detail: string, hint: string, cause?: unknown) =>
    new SignatureCheckError(subject, check, detail, { hint, cause });
  if (trustRoots.length === 0) {
    throw fail('trust-anchor', 'no trust roots are configured', TRUST_HINT);
  }

  // Trust roots first: when a root and a bundle certificate could both issue, the root wins.
  const builder = new x509.X509ChainBuilder({ certificates: [...trustRoots, ...intermediates] });
  let built: X509Certificate[];
  try {
    built = [...(await builder.build(leaf))];
  } catch (err) {
    throw fail('chain', `cannot build a certification path for ${describe(leaf)}: ${(err as Error).message}`,
      'check the bundle chain: it must hold the intermediates in issuing order, without loops', err);
  }
  const anchorAt = built.findIndex((c) => trustRoots.some((root) => sameCertificate(root, c)));
  if (anchorAt < 0) {
    const last = built[built.length - 1]!;
    const detail = (await last.isSelfSigned())
      ? `the path ends at root ${describe(last)}, which is not one of the ${trustRoots.length} trust root(s)`
      : `no issuer certificate for ${JSON.stringify(last.issuer)} (issuer of ${describe(last)}) in the bundle chain or the trust roots`;
    throw fail('trust-anchor', detail, TRUST_HINT);
  }
  const path = built.slice(0, anchorAt + 1);
  const validatedAt = leaf.notBefore;

  for (const cert of path) {
    const alg = cert.signatureAlgorithm as { name: string; hash?: { name: string } };
    const acceptable = HASHLESS_ALGORITHMS.has(alg.name) || (alg.hash !== undefined && ACCEPTED_HASHES.has(alg.hash.name));
    if (!acceptable) {
      throw fail('digest-algorithm',
        `${describe(cert)} is signed with ${alg.name}${alg.hash ? ` ${alg.hash.name}` : ''}; only SHA-256/384/512 and Ed25519 signatures are accepted`,
        'reissue the certificate with a SHA-256 (or stronger) signature');
    }
  }

  for (const cert of path) {
    if (validatedAt < cert.notBefore || validatedAt > cert.notAfter) {
      throw fail('validity',
        `${describe(cert)} is valid from ${cert.notBefore.toISOString()} to ${cert.notAfter.toISOString()}, ` +
          `not at the leaf's NotBefore ${validatedAt.toISOString()}`,
        'the signing certificate must be issued while every CA above it is valid; reissue it under a valid CA');
    }
  }

  // path[i] for i >= 1 issued path[i-1]; i - 1 intermediates lie below it.
  for (let i = 1; i < path.length; i++) {
    const issuer = path[i]!;
    const basic = issuer.getExtension(x509.BasicConstraintsExtension);
    if (!basic?.ca) {
      throw fail('ca-constraint', `${describe(issuer)} issued ${describe(path[i - 1]!)} but is not a CA (basicConstraints cA is ${basic ? 'false' : 'absent'})`,
        'issue the signing certificate from a CA certificate (basicConstraints cA=true)');
    }
    const usage = issuer.getExtension(x509.KeyUsagesExtension);
    if (usage && (usage.usages & x509.KeyUsageFlags.keyCertSign) === 0) {
      throw fail('ca-constraint', `${describe(issuer)} has a keyUsage without keyCertSign, so it may not issue certificates`,
        'issue from a CA whose keyUsage includes keyCertSign');
    }
    if (basic.pathLength !== undefined && i - 1 > basic.pathLength) {
      throw fail('ca-constraint', `${describe(issuer)} allows ${basic.pathLength} intermediate(s) below it (pathLenConstraint), the path has ${i - 1}`,
        'shorten the chain or reissue the CA with a larger pathLenConstraint');
    }
  }

  return { certificates: path, anchor: path[path.length - 1]!, validatedAt };
}

export function sameCertificate(a: X509Certificate, b: X509Certificate): boolean {
  return Buffer.from(a.rawData).equals(Buffer.from(b.rawData));
}

/** `"CN=Leaf" → "CN=Root" (trust anchor), valid at <the leaf's NotBefore>`. */
export function describePath(path: CertificationPath): string {
  return `${path.certificates.map((c) => JSON.stringify(c.subject)).join(' → ')} (trust anchor), valid at ${path.validatedAt.toISOString()}`;
}

/** `"CN=Leaf" (serial 01)`: subjects alone can repeat across a chain and its roots. */
export function describe(cert: X509Certificate): string {
  return `${JSON.stringify(cert.subject)} (serial ${cert.serialNumber})`;
}
