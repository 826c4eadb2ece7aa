/**
 * Annotation keys this project reads and writes, and the format of the values
 * it defines. Keys under `io.deckhouse.delivery-kit.` are Delivery Kit's
 * (deckhouse/delivery-kit-sdk); we must write them exactly as it does.
 */
import { InvalidArgumentError } from '../core/errors.js';

/** Manifest: standard base64 of the signature over the manifest's signed message (see signature/payload.ts). */
export const SIGNATURE_ANNOTATION = 'io.deckhouse.delivery-kit.signature';

/** Manifest: standard base64 of the signer's PEM certificate (base64 of DER is accepted when reading). */
export const CERT_ANNOTATION = 'io.deckhouse.delivery-kit.cert';

/** Manifest: standard base64 of the PEM intermediates (Delivery Kit also appends the root); may be empty. */
export const CHAIN_ANNOTATION = 'io.deckhouse.delivery-kit.chain';

/** The three bundle keys; they are the only annotations the signed message leaves out. */
export const BUNDLE_ANNOTATIONS: readonly string[] = [SIGNATURE_ANNOTATION, CERT_ANNOTATION, CHAIN_ANNOTATION];

/**
 * Layer descriptor: dm-verity root hash (64 hex) of the layer's EROFS image.
 * Manifest: the same over the flattened image (all layers merged into one tar).
 * Layer descriptors are not covered by the signature; the manifest value is.
 */
export const DM_VERITY_ROOT_HASH_ANNOTATION = 'io.deckhouse.delivery-kit.dm-verity-root-hash';

/**
 * Layer descriptor and manifest: the mkfs.erofs build time (decimal seconds)
 * the root hash was computed with. Delivery Kit writes it next to every root
 * hash; it is always its fixed time 1750791050.
 */
export const BUILD_TIMESTAMP_ANNOTATION = 'io.deckhouse.delivery-kit.build-timestamp';

/**
 * Manifest (ours): the layers' root hashes in layer order, comma-separated.
 * Being a manifest annotation it is signed, which the per-layer values are not.
 */
export const LAYER_ROOT_HASHES_ANNOTATION = 'io.containerd-integrity.layer-root-hashes';

/** Index entry: the tag of an image in an OCI layout (`dir:tag`). */
export const REF_NAME_ANNOTATION = 'org.opencontainers.image.ref.name';

const ROOT_HASH = /^[0-9a-f]{64}$/;

export function isRootHash(value: string): boolean {
  return ROOT_HASH.test(value);
}

export function formatLayerRootHashes(rootHashes: readonly string[]): string {
  return rootHashes.join(',');
}

/** Parses LAYER_ROOT_HASHES_ANNOTATION; `layerCount` is the manifest's; `where` names the image. */
export function parseLayerRootHashes(value: string, layerCount: number, where: string): string[] {
  const hashes = value === '' ? [] : value.split(',');
  const bad = hashes.findIndex((h) => !isRootHash(h));
  if (bad >= 0) {
    throw new InvalidArgumentError(`${where}: ${LAYER_ROOT_HASHES_ANNOTATION} entry ${bad + 1} is not 64 lowercase hex digits`, {
      hint: 'seal the image again with `integrityctl image seal`',
    });
  }
  if (hashes.length !== layerCount) {
    throw new InvalidArgumentError(
      `${where}: ${LAYER_ROOT_HASHES_ANNOTATION} lists ${hashes.length} root hashes for ${layerCount} layers`,
      { hint: 'seal the image again with `integrityctl image seal`' },
    );
  }
  return hashes;
}
