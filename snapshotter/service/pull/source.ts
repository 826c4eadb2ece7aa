/**
 * What a Prepare or Commit says about the layer it is for, read from its key,
 * name and labels in this one place (stargz-snapshotter's fs/source). The
 * facts are containerd 1.6's:
 *
 * - Its unpacker (client Pull, CRI PullImage) prepares every layer with label
 *   SNAPSHOT_REF_LABEL = the chain ID the unpack will commit, plus the layer
 *   descriptor's annotations under `containerd.io/snapshot/`; CRI adds
 *   CRI_*_LABEL when `disable_snapshot_annotations = false`. Commit carries
 *   the same labels.
 * - `ctr image import` and `ctr image pull` (image.Unpack) prepare with no
 *   labels at all; only their keys and Commit names say what they are.
 * - containerd's metadata layer renames every snapshot for its backend
 *   (backend-key.ts); inside that, unpack keys are `extract-<unique> <chainID>`
 *   (snapshots.UnpackKeyFormat) and committed layers are named by their chain ID.
 */
import { clientKey } from '../backend-key.js';
import type { Labels } from '../metadata/types.js';

/** containerd: the chain ID an unpack Prepare's snapshot will be committed as. */
export const SNAPSHOT_REF_LABEL = 'containerd.io/snapshot.ref';
/** CRI: digest of the compressed layer blob this snapshot unpacks. */
export const CRI_LAYER_DIGEST_LABEL = 'containerd.io/snapshot/cri.layer-digest';
/** CRI: digest of the manifest the layer was pulled for. */
export const CRI_MANIFEST_DIGEST_LABEL = 'containerd.io/snapshot/cri.manifest-digest';
/** CRI: the image reference being pulled (`registry.example/app:1.0`). */
export const CRI_IMAGE_REF_LABEL = 'containerd.io/snapshot/cri.image-ref';

/**
 * CRI: the digests of this layer's blob and of every layer above it, comma
 * separated (cut short where the label would pass containerd's size limit),
 * "for preparing layers in parallel".
 */
export const CRI_IMAGE_LAYERS_LABEL = 'containerd.io/snapshot/cri.image-layers';

/** containerd's snapshots.UnpackKeyPrefix: keys of snapshots a layer is unpacked into. */
const UNPACK_KEY_PREFIX = 'extract-';

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** What is known about the layer an unpack snapshot is for; every field may be missing. */
export interface LayerSource {
  /** The chain ID the snapshot is (to be) committed as. */
  chainId: string | undefined;
  /** The layer blob's digest, when CRI said it. */
  layerDigest: string | undefined;
  /** The image being pulled, when CRI said it. */
  imageRef: string | undefined;
  manifestDigest: string | undefined;
}

export type PrepareSource =
  /**
   * A snapshot containerd will unpack a layer into, then commit. `fastPath`:
   * the caller is containerd's unpacker (the Prepare has SNAPSHOT_REF_LABEL),
   * which takes ALREADY_EXISTS as "the layer is there, skip the unpack".
   * image.Unpack (ctr import) instead retries with a new key forever, and
   * containerd's metadata layer calls ALREADY_EXISTS without the label a bug.
   */
  | { kind: 'unpack'; layer: LayerSource; fastPath: boolean }
  /** Anything else: a container's root filesystem, a build step, a test. */
  | { kind: 'other' };

export function prepareSource(key: string, labels: Labels): PrepareSource {
  const layer = layerSource(labels, undefined);
  const unpackKey = clientKey(key).startsWith(UNPACK_KEY_PREFIX);
  if (labels[SNAPSHOT_REF_LABEL] === undefined && !unpackKey) return { kind: 'other' };
  // An unlabeled unpack key ends in the chain ID: "extract-<unique> <chainID>".
  return {
    kind: 'unpack',
    layer: { ...layer, chainId: layer.chainId ?? digestOrUndefined(clientKey(key).split(' ').at(-1)) },
    fastPath: layer.chainId !== undefined,
  };
}

/** The layer a Commit makes: its labels, else the chain ID containerd names committed layers by. */
export function commitSource(name: string, labels: Labels): LayerSource {
  return layerSource(labels, digestOrUndefined(clientKey(name)));
}

/** The chain ID a committed snapshot claims to be: its label, else its name. Unchecked: for lookups only. */
export function claimedChainId(name: string, labels: Labels): string | undefined {
  return digestOrUndefined(labels[SNAPSHOT_REF_LABEL]) ?? digestOrUndefined(clientKey(name));
}

/**
 * The layers CRI_IMAGE_LAYERS_LABEL lists, from this one up, as their own
 * Prepares will describe them (but for the chain ID, which needs the image
 * config); none when the label is missing or malformed.
 */
export function criImageLayers(labels: Labels): Array<LayerSource & { layerDigest: string }> {
  const digests = (labels[CRI_IMAGE_LAYERS_LABEL] ?? '').split(',');
  if (!digests.every((d) => DIGEST.test(d))) return [];
  const { imageRef, manifestDigest } = layerSource(labels, undefined);
  return digests.map((layerDigest) => ({ chainId: undefined, layerDigest, imageRef, manifestDigest }));
}

function layerSource(labels: Labels, fallbackChainId: string | undefined): LayerSource {
  return {
    chainId: digestOrUndefined(labels[SNAPSHOT_REF_LABEL]) ?? fallbackChainId,
    layerDigest: digestOrUndefined(labels[CRI_LAYER_DIGEST_LABEL]),
    imageRef: labels[CRI_IMAGE_REF_LABEL] || undefined,
    manifestDigest: digestOrUndefined(labels[CRI_MANIFEST_DIGEST_LABEL]),
  };
}

function digestOrUndefined(value: string | undefined): string | undefined {
  return value !== undefined && DIGEST.test(value) ? value : undefined;
}
