/**
 * Layer chain IDs (image-spec config.md, "Layer ChainID"): the name a layer
 * stack gets from its uncompressed layers' digests, and the name containerd
 * gives the committed snapshot of that stack:
 *
 *   ChainID(L₀)      = DiffID(L₀)
 *   ChainID(L₀|…|Lₙ) = sha256(ChainID(L₀|…|Lₙ₋₁) + " " + DiffID(Lₙ))
 */
import { createHash } from 'node:crypto';

/** The chain ID of `diffId` stacked on the chain `parent` (undefined: a bottom layer). */
export function childChainId(parent: string | undefined, diffId: string): string {
  if (parent === undefined) return diffId;
  return `sha256:${createHash('sha256').update(`${parent} ${diffId}`).digest('hex')}`;
}

/** The chain ID of every prefix of `diffIds` (bottom layer first), as the config's rootfs.diff_ids lists them. */
export function chainIds(diffIds: readonly string[]): string[] {
  const ids: string[] = [];
  for (const diffId of diffIds) ids.push(childChainId(ids.at(-1), diffId));
  return ids;
}
