/**
 * Verifying a sealed or Delivery Kit signed image the way a node will: the
 * signature bundle, the chain to the trust roots, then every root hash
 * recomputed from the blobs and compared with the signed values. Every check
 * runs and is reported, so one run shows everything that is wrong.
 */
import { IntegrityError } from '../core/errors.js';
import { DM_VERITY_ROOT_HASH_ANNOTATION, LAYER_ROOT_HASHES_ANNOTATION, parseLayerRootHashes } from '../oci/annotations.js';
import type { ImageSource } from '../oci/image-source.js';
import { parseBundle, verifySignature, type SignatureBundle } from '../signature/bundle.js';
import { describe, describePath, verifyChain } from '../signature/chain.js';
import { SignatureCheckError } from '../signature/errors.js';
import { signedMessage } from '../signature/payload.js';
import type { X509Certificate } from '../signature/x509.js';
import { imageRootHash, imageRootHashSteps, layerRootHash } from './root-hash.js';

export type CheckStatus = 'ok' | 'failed' | 'skipped';

export interface ImageCheck {
  /** `bundle`, `chain`, `signature`, `layer-root-hashes`, `layer`, `image-root-hash`. */
  check: string;
  status: CheckStatus;
  detail: string;
  /** 1-based layer number, for `layer` checks. */
  layer?: number;
  digest?: string;
  hint?: string;
}

export interface ImageVerification {
  image: string;
  manifestDigest: string;
  ok: boolean;
  checks: ImageCheck[];
}

export interface VerifyImageOptions {
  tempDir?: string;
  /** Blob bytes read so far, of `total`. */
  onProgress?: (done: number, total: number) => void;
}

export async function verifyImage(
  image: ImageSource,
  trustRoots: readonly X509Certificate[],
  options: VerifyImageOptions = {},
): Promise<ImageVerification> {
  const { manifest } = image;
  const checks: ImageCheck[] = [];
  const record = (check: ImageCheck) => checks.push(check);
  const failure = (check: string, err: unknown, extra: Partial<ImageCheck> = {}): ImageCheck => ({
    check,
    status: 'failed',
    // Without the image name a SignatureCheckError's message starts with: the report already shows it.
    detail: err instanceof SignatureCheckError ? `${err.check} check failed: ${err.detail}` : (err as Error).message,
    ...(err instanceof IntegrityError && err.hint ? { hint: err.hint } : {}),
    ...extra,
  });

  // Signature: bundle, chain, signature over the message.
  const message = signedMessage(manifest);
  let bundle: SignatureBundle | undefined;
  try {
    bundle = parseBundle(manifest.annotations, image.name);
    record({ check: 'bundle', status: 'ok', detail: `signed by ${describe(bundle.leaf)}, ${bundle.chain.length} chain certificate(s)` });
  } catch (err) {
    record(failure('bundle', err));
  }
  if (bundle) {
    try {
      const path = await verifyChain(bundle.leaf, bundle.chain, trustRoots, image.name);
      record({
        check: 'chain',
        status: 'ok',
        detail: describePath(path),
      });
    } catch (err) {
      record(failure('chain', err));
    }
    try {
      const scheme = verifySignature(bundle, message, image.name);
      record({ check: 'signature', status: 'ok', detail: `${scheme} over message ${message}` });
    } catch (err) {
      record(failure('signature', err));
    }
  } else {
    record({ check: 'chain', status: 'skipped', detail: 'no bundle' });
    record({ check: 'signature', status: 'skipped', detail: 'no bundle' });
  }

  // The signed layer list; Delivery Kit images have none and bind layers through their digests alone.
  let signedList: string[] | undefined;
  const listValue = manifest.annotations?.[LAYER_ROOT_HASHES_ANNOTATION];
  if (listValue === undefined) {
    record({ check: 'layer-root-hashes', status: 'skipped', detail: `no ${LAYER_ROOT_HASHES_ANNOTATION} annotation; layers are bound by their signed digests only` });
  } else {
    try {
      signedList = parseLayerRootHashes(listValue, manifest.layers.length, image.name);
      record({ check: 'layer-root-hashes', status: 'ok', detail: `${signedList.length} root hash(es) in ${LAYER_ROOT_HASHES_ANNOTATION}` });
    } catch (err) {
      record(failure('layer-root-hashes', err));
    }
  }

  // Every layer recomputed from its blob.
  const progress = imageRootHashSteps(image, options);
  for (const [i, layer] of manifest.layers.entries()) {
    const where = { layer: i + 1, digest: layer.digest };
    try {
      const { rootHash } = await layerRootHash(image, layer, progress());
      const claims: [string, string | undefined][] = [
        ['signed list', signedList?.[i]],
        [`layer annotation ${DM_VERITY_ROOT_HASH_ANNOTATION}`, layer.annotations?.[DM_VERITY_ROOT_HASH_ANNOTATION]],
      ];
      const wrong = claims.filter(([, value]) => value !== undefined && value !== rootHash);
      const present = claims.filter(([, value]) => value !== undefined).map(([what]) => what);
      if (wrong.length > 0) {
        record({
          check: 'layer', status: 'failed', ...where,
          detail: `layer ${i + 1} (${layer.digest}) has root hash ${rootHash}; ${wrong.map(([what, value]) => `${what} says ${value}`).join(', ')}`,
          hint: 'the annotations do not describe this layer: seal the image again',
        });
      } else {
        record({
          check: 'layer', status: 'ok', ...where,
          detail: `layer ${i + 1} (${layer.digest}) root hash ${rootHash}${present.length ? ` matches the ${present.join(' and the ')}` : ' (no recorded value to compare)'}`,
        });
      }
    } catch (err) {
      record(failure('layer', err, { ...where, detail: `layer ${i + 1} (${layer.digest}): ${(err as Error).message}` }));
    }
  }

  // The flattened image, against the (signed) manifest annotation.
  const claimed = manifest.annotations?.[DM_VERITY_ROOT_HASH_ANNOTATION];
  if (claimed === undefined) {
    record({ check: 'image-root-hash', status: 'skipped', detail: `no ${DM_VERITY_ROOT_HASH_ANNOTATION} manifest annotation` });
  } else {
    try {
      const rootHash = await imageRootHash(image, progress());
      record(rootHash === claimed
        ? { check: 'image-root-hash', status: 'ok', detail: `flattened image root hash ${rootHash} matches the manifest annotation` }
        : { check: 'image-root-hash', status: 'failed', detail: `flattened image root hash is ${rootHash}, the manifest annotation says ${claimed}`, hint: 'seal the image again' });
    } catch (err) {
      record(failure('image-root-hash', err, { detail: `cannot compute the flattened image root hash: ${(err as Error).message}` }));
    }
  }

  return {
    image: image.name,
    manifestDigest: image.descriptor.digest,
    ok: checks.every((c) => c.status !== 'failed'),
    checks,
  };
}
