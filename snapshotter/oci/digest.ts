/**
 * Content digests. Only sha256 is accepted: it is what containerd, skopeo and
 * Delivery Kit write, and accepting others would let a blob be named by a
 * weaker hash.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../core/errors.js';

const SHA256_DIGEST = /^sha256:([0-9a-f]{64})$/;

/** The hex part of a `sha256:<hex>` digest; `where` names the document in the error. */
export function parseDigest(digest: string, where: string): string {
  const match = SHA256_DIGEST.exec(digest);
  if (!match) {
    throw new InvalidArgumentError(`${where}: digest ${JSON.stringify(digest)} is not sha256:<64 lowercase hex digits>`, {
      hint: 'only sha256 digests are supported; re-push the image with a sha256 digest algorithm',
    });
  }
  return match[1]!;
}

export function sha256Digest(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
