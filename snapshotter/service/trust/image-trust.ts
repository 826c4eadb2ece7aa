/**
 * Signed images on the node: before a layer is converted from its blob (the
 * fast path at Prepare, Commit from the blob), the manifests it belongs to
 * are read from containerd's content store and decided on
 * (policy/signature-policy.ts); after conversion the layer is checked against
 * what the signature vouches for. Refusals are LayerRefusedErrors
 * (FAILED_PRECONDITION), logged as `layer refused` with stable fields and
 * counted by reason.
 *
 * Which manifests a layer belongs to:
 *   - CRI's labels name it: `cri.manifest-digest` is the manifest being
 *     pulled, `cri.image-ref` its name. Only that manifest counts.
 *   - Without labels (`ctr image import`, `ctr pull`): every manifest of every
 *     image of the namespace whose layer chain holds the chain ID (through
 *     the same resolver that finds the blob). A chain shared by several images
 *     must pass for each of them: one protected image protects it, one
 *     refusal refuses it (fail closed).
 * A chain already committed is not converted again, so an image pulled
 * later that shares it is not checked here; see docs/signatures.md.
 */
import { IntegrityViolationError, LayerFormatError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import type { ImagePatterns } from '../../policy/image-patterns.js';
import {
  checkConverted,
  decideLayer,
  type ConvertedLayer,
  type ExpectedRootHash,
  type Refusal,
  type SignatureRefusalReason,
} from '../../policy/signature-policy.js';
import type { X509Certificate } from '../../signature/x509.js';
import type { ImageLayers, ManifestLayers } from '../containerd/image-layers.js';
import type { SignedLayer } from '../metadata/types.js';
import type { LayerSource } from '../pull/source.js';
import type { ManifestSignatures } from './manifest-signatures.js';
import { LayerRefusedError, type LayerWhere } from './refusal.js';

/** The seam the snapshotter depends on. */
export interface LayerTrust {
  /**
   * Before converting `blobDigest` for `layer`: reads and checks the
   * signatures of the manifests the layer belongs to. Throws
   * LayerRefusedError when the layer must not be converted.
   */
  plan(ns: string, layer: LayerSource, blobDigest: string): Promise<LayerPlan>;
  /** Throws LayerRefusedError when `layer` may not be built from an upper dir (its blob could not be found). */
  checkUpperDir(ns: string, layer: LayerSource): void;
}

export interface LayerPlan {
  /** Whether an image signature (or the configuration) protects the layer. */
  readonly protected: boolean;
  /** A conversion error as it is thrown: for a protected layer, content that is not the signed blob is a refusal. */
  conversionFailed(err: unknown): unknown;
  /** After conversion: checks it against the signature; what to record with the layer. Throws LayerRefusedError. */
  accept(converted: ConvertedLayer): SignedLayer | undefined;
}

export interface ImageTrustOptions {
  imageLayers: ImageLayers;
  signatures: ManifestSignatures;
  /** `signatures.required_images`. */
  required: ImagePatterns;
  logger: Logger;
  onRefusal?: (reason: SignatureRefusalReason) => void;
}

/** One manifest the layer belongs to, and the layer's position in it. */
interface Candidate {
  image: string;
  manifest: ManifestLayers;
  index: number;
}

interface ProtectedCandidate extends Candidate {
  expected: ExpectedRootHash;
  signer: string;
}

export class ImageTrust implements LayerTrust {
  private readonly options: ImageTrustOptions;

  constructor(options: ImageTrustOptions) {
    this.options = options;
  }

  /** New trust roots (SIGHUP): verdicts made with the old ones are forgotten. */
  setTrustRoots(roots: readonly X509Certificate[]): void {
    this.options.signatures.setRoots(roots);
  }

  async plan(ns: string, layer: LayerSource, blobDigest: string): Promise<LayerPlan> {
    const { signatures, required } = this.options;
    const guarded: ProtectedCandidate[] = [];
    for (const candidate of await this.candidates(ns, layer, blobDigest)) {
      const { image, manifest, index } = candidate;
      const signature = await signatures.check(manifest.manifest, manifest.document, image);
      const decision = decideLayer({ image, manifest: manifest.document, index, signature, requiredBy: required.match(image) });
      if (decision.verdict === 'refused') throw this.refuse(ns, whereOf(candidate, layer), decision.refusal);
      if (decision.verdict === 'protected') guarded.push({ ...candidate, expected: decision.expected, signer: decision.signer });
    }
    return this.planFor(ns, layer, guarded);
  }

  checkUpperDir(ns: string, layer: LayerSource): void {
    const pattern = layer.imageRef === undefined ? undefined : this.options.required.match(layer.imageRef);
    if (pattern === undefined) return;
    throw this.refuse(ns, { image: layer.imageRef, manifest: layer.manifestDigest, layer: undefined, digest: layer.layerDigest, chainId: layer.chainId }, {
      reason: 'unverifiable',
      check: 'blob',
      detail: `its blob is not in containerd's content store, so it cannot be checked against the signature the image must have (signatures.required_images ${JSON.stringify(pattern)})`,
      hint: 'check that containerd answers on containerd_address, then pull the image again',
    });
  }

  private planFor(ns: string, layer: LayerSource, guarded: readonly ProtectedCandidate[]): LayerPlan {
    const first = guarded[0];
    if (first === undefined) {
      return { protected: false, conversionFailed: (err) => err, accept: () => undefined };
    }
    return {
      protected: true,
      conversionFailed: (err) => {
        // The signed blob converted when the image was sealed: one that does not, or does not have its digest, is another.
        if (!(err instanceof IntegrityViolationError || err instanceof LayerFormatError)) return err;
        return this.refuse(ns, whereOf(first, layer), {
          reason: 'content_mismatch',
          check: 'blob',
          detail: err instanceof LayerFormatError
            ? `the blob in containerd's content store cannot be read as the signed layer: ${err.message}`
            : `the blob in containerd's content store is not the signed one: ${err.message}`,
          hint: "the blob was replaced or truncated in containerd's content store: remove the image and pull it again",
        }, err);
      },
      accept: (converted) => {
        let rootHash = converted.rootHash;
        for (const candidate of guarded) {
          const signedDiffId = candidate.manifest.layers[candidate.index]!.diffId;
          const checked = checkConverted(candidate.expected, signedDiffId, converted);
          if ('refusal' in checked) throw this.refuse(ns, whereOf(candidate, layer), checked.refusal);
          rootHash = checked.rootHash;
        }
        const signed: SignedLayer = {
          rootHash,
          binding: first.expected.binding,
          image: first.image,
          manifest: first.manifest.manifest,
          signer: first.signer,
        };
        this.options.logger.info(
          { ns, ...whereOf(first, layer), rootHash, binding: signed.binding, signer: signed.signer, images: guarded.map((c) => c.image) },
          'layer matches its image signature',
        );
        return signed;
      },
    };
  }

  /** The manifests `layer` belongs to (see the file comment). */
  private async candidates(ns: string, layer: LayerSource, blobDigest: string): Promise<Candidate[]> {
    const { imageLayers, required } = this.options;
    const unverifiable = (image: string | undefined, detail: string, hint: string, cause?: unknown) =>
      this.refuse(ns, { image, manifest: layer.manifestDigest, layer: undefined, digest: blobDigest, chainId: layer.chainId }, {
        reason: 'unverifiable', check: 'manifest', detail, hint,
      }, cause);

    if (layer.manifestDigest !== undefined) {
      const image = layer.imageRef ?? layer.manifestDigest;
      let manifest: ManifestLayers | undefined;
      try {
        manifest = await imageLayers.manifestLayers(ns, layer.manifestDigest, image);
      } catch (err) {
        throw unverifiable(image, `the manifest CRI names cannot be read: ${(err as Error).message}`, 'remove the image and pull it again', err);
      }
      if (!manifest) {
        throw unverifiable(image, "the manifest CRI names (or its config) is not in containerd's content store", 'pull the image again');
      }
      const index = layer.chainId !== undefined
        ? manifest.layers.findIndex((l) => l.chainId === layer.chainId)
        : manifest.layers.findIndex((l) => l.blob.digest === blobDigest);
      if (index < 0) {
        throw unverifiable(image, `the manifest does not list the layer (chain ${layer.chainId ?? '(unknown)'}, blob ${blobDigest})`,
          'the CRI labels of the pull do not match its image: pull the image again');
      }
      return [{ image, manifest, index }];
    }

    const candidates: Candidate[] = [];
    if (layer.chainId !== undefined) {
      for (const image of await imageLayers.imageChains(ns)) {
        if (image.error) {
          const pattern = required.match(image.name);
          if (pattern === undefined) continue;
          throw unverifiable(image.name, `the image must be signed (signatures.required_images ${JSON.stringify(pattern)}) and cannot be read, so whether the layer is one of its layers is unknown: ${image.error.message}`,
            image.error.hint ?? `remove the image (ctr -n ${ns} images rm ${image.name}) and pull it again`, image.error);
        }
        for (const manifest of image.manifests) {
          const index = manifest.layers.findIndex((l) => l.chainId === layer.chainId);
          if (index >= 0) candidates.push({ image: image.name, manifest, index });
        }
      }
    }
    if (candidates.length === 0 && layer.imageRef !== undefined && required.match(layer.imageRef) !== undefined) {
      throw unverifiable(layer.imageRef, 'no manifest of the image lists the layer, so its signature cannot be checked', 'pull the image again');
    }
    return candidates;
  }

  private refuse(ns: string, where: LayerWhere, refusal: Refusal, cause?: unknown): LayerRefusedError {
    const error = new LayerRefusedError(where, refusal, cause);
    this.options.logger.warn({ ns, ...where, check: refusal.check, reason: refusal.reason, err: error }, 'layer refused');
    this.options.onRefusal?.(refusal.reason);
    return error;
  }
}

function whereOf(candidate: Candidate, layer: LayerSource): LayerWhere {
  return {
    image: candidate.image,
    manifest: candidate.manifest.manifest,
    layer: candidate.index + 1,
    digest: candidate.manifest.layers[candidate.index]!.blob.digest,
    chainId: layer.chainId,
  };
}
