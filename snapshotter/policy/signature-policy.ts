/**
 * Whether the node may convert a layer of an image, and what the converted
 * layer must then be — decided from data alone: the manifest, the outcome of
 * its signature check, the configuration. The I/O around it (reading
 * manifests from containerd, verifying bundles, logging, metrics) is in
 * service/trust/. The rules (docs/signatures.md, "On the node"):
 *
 * - A manifest that carries a signature bundle is protected: the signature
 *   must verify over the manifest and chain to a trust root, or every layer
 *   of it is refused.
 * - A manifest without one is refused when `signatures.required_images`
 *   names the image; otherwise its layers are converted as any other.
 * - A protected layer's uncompressed digest must be the one its signed config
 *   lists (the config's digest is in the signed manifest): that binds the
 *   converted bytes to the signature whatever compression the blob had.
 * - Its root hash must equal its entry in the signed
 *   `io.containerd-integrity.layer-root-hashes` list. Without a list
 *   (Delivery Kit), the signature binds the layer through its digest alone,
 *   and the root hash recomputed from that content is the trusted value. The
 *   per-layer `dm-verity-root-hash` annotations are not signed and never
 *   trusted.
 */
import { LAYER_ROOT_HASHES_ANNOTATION, parseLayerRootHashes } from '../oci/annotations.js';
import type { ImageManifest } from '../oci/types.js';
import type { SignatureCheck } from '../signature/errors.js';

/** Why a layer was refused; the `reason` label of the refusals metric. */
export type SignatureRefusalReason =
  /** The bundle, the signature over the manifest, or the signed root-hash list is broken. */
  | 'signature_invalid'
  /** The signing certificate does not chain to a trust root at its issuance (unknown CA, not a CA, not valid then). */
  | 'signer_untrusted'
  /** `signatures.required_images` names the image and it is not signed. */
  | 'signature_missing'
  /** The converted layer's root hash is not the signed one. */
  | 'root_hash_mismatch'
  /** The blob is not the content the signature covers (digest or diff ID). */
  | 'content_mismatch'
  /** What the check needs cannot be read (the manifest, the blob), or the manifest does not list the layer. */
  | 'unverifiable';

export const SIGNATURE_REFUSAL_REASONS: readonly SignatureRefusalReason[] = [
  'signature_invalid',
  'signer_untrusted',
  'signature_missing',
  'root_hash_mismatch',
  'content_mismatch',
  'unverifiable',
];

/** The outcome of checking a manifest's signature bundle against the trust roots. */
export type SignatureState =
  | { state: 'unsigned' }
  | { state: 'verified'; signer: string }
  | { state: 'failed'; check: SignatureCheck; detail: string; hint: string | undefined };

/** A refusal in words: the reason (metric label), the check that failed, what and the fix. */
export interface Refusal {
  reason: SignatureRefusalReason;
  check: string;
  detail: string;
  hint: string;
}

/** What a protected layer's root hash must be. */
export type ExpectedRootHash = { binding: 'signed-list'; rootHash: string } | { binding: 'signed-digest' };

export type LayerDecision =
  | { verdict: 'unprotected'; reason: string }
  | { verdict: 'protected'; expected: ExpectedRootHash; signer: string }
  | { verdict: 'refused'; refusal: Refusal };

export interface LayerFacts {
  /** The image's name, for messages. */
  image: string;
  manifest: ImageManifest;
  /** 0-based position of the layer in the manifest. */
  index: number;
  signature: SignatureState;
  /** The `signatures.required_images` pattern that names the image, if one does. */
  requiredBy: string | undefined;
}

const RESEAL_HINT = 'seal the image again (`integrityctl image seal`) and check it with `integrityctl image verify`';

export function decideLayer(facts: LayerFacts): LayerDecision {
  const { signature } = facts;
  switch (signature.state) {
    case 'unsigned':
      if (facts.requiredBy === undefined) return { verdict: 'unprotected', reason: 'the manifest is not signed' };
      return refused({
        reason: 'signature_missing',
        check: 'bundle',
        detail: `the manifest is not signed, and signatures.required_images names the image (${JSON.stringify(facts.requiredBy)})`,
        hint: 'sign the image (Delivery Kit, or `integrityctl image seal`) and push it again, or pull a signed tag',
      });
    case 'failed':
      return refused({
        reason: reasonOfCheck(signature.check),
        check: signature.check,
        detail: signature.detail,
        hint: signature.hint ?? RESEAL_HINT,
      });
    case 'verified': {
      const list = facts.manifest.annotations?.[LAYER_ROOT_HASHES_ANNOTATION];
      if (list === undefined) return { verdict: 'protected', expected: { binding: 'signed-digest' }, signer: signature.signer };
      let hashes: string[];
      try {
        hashes = parseLayerRootHashes(list, facts.manifest.layers.length, facts.image);
      } catch (err) {
        return refused({ reason: 'signature_invalid', check: 'layer-root-hashes', detail: (err as Error).message, hint: RESEAL_HINT });
      }
      return { verdict: 'protected', expected: { binding: 'signed-list', rootHash: hashes[facts.index]! }, signer: signature.signer };
    }
  }
}

/** What was converted from the blob. */
export interface ConvertedLayer {
  rootHash: string;
  /** Digest of the uncompressed tar. */
  diffId: string;
}

/**
 * After conversion: the converted layer against what the signature vouches
 * for (`signedDiffId`: the signed config's entry for the layer). Returns the
 * trusted root hash, or the refusal.
 */
export function checkConverted(
  expected: ExpectedRootHash,
  signedDiffId: string,
  converted: ConvertedLayer,
): { rootHash: string } | { refusal: Refusal } {
  if (converted.diffId !== signedDiffId) {
    return {
      refusal: {
        reason: 'content_mismatch',
        check: 'diff-id',
        detail: `the blob uncompresses to ${converted.diffId}, the signed image config lists ${signedDiffId}`,
        hint: "containerd's content store holds another layer than the image names: remove the image and pull it again",
      },
    };
  }
  if (expected.binding === 'signed-list' && expected.rootHash !== converted.rootHash) {
    return {
      refusal: {
        reason: 'root_hash_mismatch',
        check: 'root-hash',
        detail: `the layer converts to root hash ${converted.rootHash}, its signed ${LAYER_ROOT_HASHES_ANNOTATION} entry is ${expected.rootHash}`,
        hint: `the signed list does not describe this layer (sealed with another converter, or edited before signing): ${RESEAL_HINT}`,
      },
    };
  }
  return { rootHash: converted.rootHash };
}

export function reasonOfCheck(check: SignatureCheck): SignatureRefusalReason {
  switch (check) {
    case 'chain':
    case 'ca-constraint':
    case 'validity':
    case 'trust-anchor':
      return 'signer_untrusted';
    case 'bundle':
    case 'payload':
    case 'signature':
    case 'digest-algorithm':
      return 'signature_invalid';
  }
}

function refused(refusal: Refusal): LayerDecision {
  return { verdict: 'refused', refusal };
}
