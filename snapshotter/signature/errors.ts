/**
 * A failed signature check, saying which one: callers (the CLI's check list,
 * the CRI proxy's refusal message, tests) need the check, not only the text.
 */
import { SignatureError, type ErrorOptions } from '../core/errors.js';

/**
 * - `bundle`: the three annotations are missing, empty, not base64 or not certificates
 * - `payload`: the manifest cannot be turned into the signed message
 * - `signature`: the signature does not verify with the leaf's key over the message
 * - `chain`: no certification path from the leaf to an anchor could be built
 * - `ca-constraint`: an issuer is not a CA, may not sign certificates, or its pathLen is exceeded
 * - `validity`: a certificate in the path is not valid at the leaf's NotBefore
 * - `trust-anchor`: the path does not end at one of the trust roots
 * - `digest-algorithm`: a certificate is signed with SHA-1 (or another refused algorithm), or the key type is not supported
 */
export type SignatureCheck =
  | 'bundle'
  | 'payload'
  | 'signature'
  | 'chain'
  | 'ca-constraint'
  | 'validity'
  | 'trust-anchor'
  | 'digest-algorithm';

export class SignatureCheckError extends SignatureError {
  readonly check: SignatureCheck;
  /** What was checked: `image oci:/path:tag (manifest sha256:…)`, `message 3f…`. */
  readonly subject: string;
  /** What was wrong, without the subject and the check: for callers that name those their own way. */
  readonly detail: string;

  constructor(subject: string, check: SignatureCheck, detail: string, options: ErrorOptions = {}) {
    super(`${subject}: ${check} check failed: ${detail}`, options);
    this.check = check;
    this.subject = subject;
    this.detail = detail;
  }
}
