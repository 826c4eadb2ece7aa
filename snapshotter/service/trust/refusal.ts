/**
 * A layer the snapshotter refuses to convert or commit because of its
 * image's signature: FAILED_PRECONDITION for containerd, naming the image,
 * the layer, the check and the fix, with the fields tests and logs need.
 */
import { FailedPreconditionError } from '../../core/errors.js';
import type { Refusal, SignatureRefusalReason } from '../../policy/signature-policy.js';

/** Which layer of which image; every part that is known. */
export interface LayerWhere {
  image: string | undefined;
  manifest: string | undefined;
  /** 1-based position in the manifest. */
  layer: number | undefined;
  /** The layer's blob digest as the manifest lists it (else as containerd named it). */
  digest: string | undefined;
  chainId: string | undefined;
}

export class LayerRefusedError extends FailedPreconditionError {
  override readonly code = 'ERR_LAYER_REFUSED';
  readonly reason: SignatureRefusalReason;
  readonly check: string;
  readonly where: LayerWhere;

  constructor(where: LayerWhere, refusal: Refusal, cause?: unknown) {
    super(`${describeWhere(where)} is refused: ${refusal.check} check failed: ${refusal.detail}`, {
      hint: refusal.hint,
      ...(cause === undefined ? {} : { cause }),
    });
    this.reason = refusal.reason;
    this.check = refusal.check;
    this.where = where;
  }
}

/** `layer 2 (sha256:…) of image registry.example/app:1 (manifest sha256:…)`, with what is known. */
export function describeWhere(where: LayerWhere): string {
  const layer = where.layer !== undefined
    ? `layer ${where.layer}${where.digest ? ` (${where.digest})` : ''}`
    : `layer ${where.digest ?? where.chainId ?? '(unknown)'}`;
  if (where.image === undefined) return layer;
  return `${layer} of image ${where.image}${where.manifest ? ` (manifest ${where.manifest})` : ''}`;
}
