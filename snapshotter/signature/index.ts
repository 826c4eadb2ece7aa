/**
 * `containerd-integrity/signature`: Delivery Kit compatible manifest
 * signatures — the signed message, the annotation bundle, the X.509 chain and
 * the trust roots. Pure TypeScript; no root, no native addon.
 */
export { manifestPayload, signedMessage, isSignedMessage } from './payload.js';
export {
  bundleAnnotations,
  createSigner,
  hasBundle,
  parseBundle,
  signMessage,
  verifyBundle,
  verifySignature,
  type SignatureBundle,
  type SignatureScheme,
  type Signer,
  type VerifiedSignature,
} from './bundle.js';
export { verifyChain, describe as describeCertificate, type CertificationPath } from './chain.js';
export { loadNodeTrustRoots, loadTrustRoots, NODE_TRUST_DIR, PACKAGE_TRUST_DIR, type TrustRoot } from './trust.js';
export { SignatureCheckError, type SignatureCheck } from './errors.js';
export { parsePemCertificates } from './pem.js';
export { x509, type X509Certificate } from './x509.js';
