/**
 * The check that makes a layer built from a blob trustworthy as the snapshot
 * containerd asked for: the blob's uncompressed digest (diff ID) must be the
 * one the image config lists, and stacked on the parent's chain ID it must
 * give the chain ID the snapshot is committed as (oci/chain-id.ts).
 */
import { IntegrityViolationError } from '../../core/errors.js';
import { childChainId } from '../../oci/chain-id.js';

export interface LayerChainFacts {
  /** The blob. */
  digest: string;
  /** What the blob uncompressed to. */
  diffId: string;
  /** What the image config lists for the layer, when it was found through an image. */
  expectedDiffId: string | undefined;
  /** The chain ID the snapshot will be committed as, when known. */
  chainId: string | undefined;
  /** '' for a bottom layer. */
  parent: string;
  /** The parent's chain ID, when known. */
  parentChainId: string | undefined;
}

/** The checked chain ID, or undefined when there was nothing to check it against; throws on a mismatch. */
export function checkLayerChain(facts: LayerChainFacts): string | undefined {
  const { digest, diffId, chainId } = facts;
  if (facts.expectedDiffId !== undefined && facts.expectedDiffId !== diffId) {
    throw new IntegrityViolationError(
      `layer blob ${digest} uncompresses to ${diffId}, but the image config lists diff ID ${facts.expectedDiffId} for layer ${chainId ?? '(unknown chain)'}`,
      { hint: "containerd's content store holds a different blob than the image names: remove the image and pull it again" },
    );
  }
  if (chainId === undefined) return undefined;
  if (facts.parent !== '' && facts.parentChainId === undefined) return undefined;
  const computed = childChainId(facts.parent === '' ? undefined : facts.parentChainId, diffId);
  if (computed !== chainId) {
    throw new IntegrityViolationError(
      `layer blob ${digest} (diff ID ${diffId}) on ${facts.parent === '' ? 'no parent' : `parent ${facts.parentChainId}`} makes chain ${computed}, not ${chainId} as containerd asked`,
      { hint: 'the layer blob or its labels do not belong to this image: remove the image and pull it again, and check the CRI layer-digest annotation' },
    );
  }
  return chainId;
}
