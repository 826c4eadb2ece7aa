/**
 * Sealing (the builder side): compute every layer's dm-verity root hash and
 * the flattened image's, write them as Delivery Kit writes them plus our
 * signed layer list, sign the manifest, and store the new manifest in an OCI
 * layout. Layer blobs and the config are unchanged: their digests, which the
 * signature covers, bind the content the node converts and compares.
 */
import { IntegrityViolationError, InvalidArgumentError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/log.js';
import { DELIVERY_KIT_BUILD_TIME } from '../layer/erofs/writer.js';
import {
  BUILD_TIMESTAMP_ANNOTATION,
  BUNDLE_ANNOTATIONS,
  DM_VERITY_ROOT_HASH_ANNOTATION,
  formatLayerRootHashes,
  LAYER_ROOT_HASHES_ANNOTATION,
  REF_NAME_ANNOTATION,
} from '../oci/annotations.js';
import { openLayoutImage, type ImageSource } from '../oci/image-source.js';
import { formatLayoutReference, OciLayout, parseLayoutReference } from '../oci/layout.js';
import { CONVERTIBLE_LAYER_TYPES, MediaType, serializeJson, type Descriptor, type ImageManifest } from '../oci/types.js';
import { bundleAnnotations, signMessage, verifySignature, type Signer } from '../signature/bundle.js';
import { verifyChain } from '../signature/chain.js';
import { signedMessage } from '../signature/payload.js';
import type { X509Certificate } from '../signature/x509.js';
import { imageRootHash, imageRootHashSteps, layerRootHash } from './root-hash.js';

export interface SealOptions {
  /** `<oci-layout>[:tag]` to read. */
  input: string;
  /** `<oci-layout>[:tag]` to write: a new or empty directory, or an existing layout (the input's included). Default tag: the input image's. */
  output: string;
  signer: Signer;
  /** When given, the new bundle's chain is checked against these before anything is written. */
  trustRoots?: readonly X509Certificate[];
  tempDir?: string;
  /** Blob bytes read so far, of `total` (every layer is read twice: alone and flattened). */
  onProgress?: (done: number, total: number) => void;
  log?: Logger;
}

export interface SealResult {
  /** Where the sealed image is: `oci:/dir:tag`. */
  output: string;
  descriptor: Descriptor;
  manifest: ImageManifest;
  layerRootHashes: string[];
  imageRootHash: string;
}

export async function sealImage(options: SealOptions): Promise<SealResult> {
  const log = options.log ?? silentLogger;
  const image = await openLayoutImage(options.input);
  const { manifest } = image;
  checkLayerTypes(image);
  // A bad output is refused before the slow part (open() also checks an existing layout's version).
  const out = parseLayoutReference(options.output);
  if (await OciLayout.probeTarget(out.dir)) await OciLayout.open(out.dir);

  const progress = imageRootHashSteps(image, options);

  const diffIds = await configDiffIds(image);
  const layerRootHashes: string[] = [];
  for (const [i, layer] of manifest.layers.entries()) {
    const result = await layerRootHash(image, layer, progress());
    const expected = diffIds[i];
    if (expected !== undefined && expected !== result.diffId) {
      throw new IntegrityViolationError(
        `${image.name}: layer ${i + 1} (${layer.digest}) uncompresses to ${result.diffId}, the config's rootfs.diff_ids says ${expected}`,
        { hint: 'the image is inconsistent; rebuild it' },
      );
    }
    log.info({ image: image.name, layer: layer.digest, rootHash: result.rootHash }, 'layer root hash');
    layerRootHashes.push(result.rootHash);
  }
  const flattened = await imageRootHash(image, progress());
  log.info({ image: image.name, rootHash: flattened }, 'flattened image root hash');

  const sealed = annotate(manifest, layerRootHashes, flattened);
  const message = signedMessage(sealed);
  const bundle = signMessage(options.signer, message);
  // Checks of our own output: a bundle that does not verify must never be written.
  verifySignature(bundle, message, image.name);
  if (options.trustRoots) await verifyChain(bundle.leaf, bundle.chain, options.trustRoots, `signer certificate for ${image.name}`);
  sealed.annotations = { ...sealed.annotations, ...bundleAnnotations(bundle) };

  const tag = out.tag ?? image.reference.tag ?? image.descriptor.annotations?.[REF_NAME_ANNOTATION];
  const target = await OciLayout.openOrCreate(out.dir);
  for (const blob of [manifest.config, ...manifest.layers]) await target.copyBlobFrom(image.layout, blob);
  const manifestBlob = await target.writeBlob(serializeJson(sealed), sealed.mediaType ?? MediaType.imageManifest);
  // The index entry keeps the input's platform and annotations; addManifest sets the tag.
  const { annotations: entryAnnotations, ...entry } = image.descriptor;
  const kept = Object.entries(entryAnnotations ?? {}).filter(([key]) => key !== REF_NAME_ANNOTATION);
  const descriptor: Descriptor = { ...entry, ...manifestBlob, ...(kept.length ? { annotations: Object.fromEntries(kept) } : {}) };
  await target.addManifest(descriptor, tag);
  const output = formatLayoutReference({ dir: target.dir, tag });
  log.info({ image: image.name, output, manifest: descriptor.digest }, 'image sealed');
  return { output, descriptor, manifest: sealed, layerRootHashes, imageRootHash: flattened };
}

/**
 * The manifest with Delivery Kit's root-hash annotations on every layer and on
 * the manifest, our signed layer list, and no old bundle (it is re-signed).
 */
export function annotate(manifest: ImageManifest, layerRootHashes: readonly string[], flattenedRootHash: string): ImageManifest {
  const buildTime = String(DELIVERY_KIT_BUILD_TIME);
  const sealed = structuredClone(manifest);
  sealed.layers = sealed.layers.map((layer, i) => ({
    ...layer,
    annotations: { ...layer.annotations, [DM_VERITY_ROOT_HASH_ANNOTATION]: layerRootHashes[i]!, [BUILD_TIMESTAMP_ANNOTATION]: buildTime },
  }));
  const kept = Object.entries(sealed.annotations ?? {}).filter(([key]) => !BUNDLE_ANNOTATIONS.includes(key));
  sealed.annotations = {
    ...Object.fromEntries(kept),
    [DM_VERITY_ROOT_HASH_ANNOTATION]: flattenedRootHash,
    [BUILD_TIMESTAMP_ANNOTATION]: buildTime,
    [LAYER_ROOT_HASHES_ANNOTATION]: formatLayerRootHashes(layerRootHashes),
  };
  return sealed;
}

function checkLayerTypes(image: ImageSource): void {
  image.manifest.layers.forEach((layer, i) => {
    if (!CONVERTIBLE_LAYER_TYPES.has(layer.mediaType)) {
      throw new InvalidArgumentError(`${image.name}: layer ${i + 1} (${layer.digest}) has media type ${layer.mediaType}, which is not a tar layer`, {
        hint: 'only tar, tar+gzip and tar+zstd layers can be sealed; rebuild the image without foreign or non-distributable layers',
      });
    }
  });
}

/** The config's rootfs.diff_ids, when the config has them (an OCI or Docker image config). */
async function configDiffIds(image: ImageSource): Promise<(string | undefined)[]> {
  const config = JSON.parse((await image.readBlob(image.manifest.config)).toString('utf8')) as { rootfs?: { diff_ids?: unknown } };
  const ids = config.rootfs?.diff_ids;
  return Array.isArray(ids) ? ids.map((id) => (typeof id === 'string' ? id : undefined)) : [];
}
