/**
 * Signature checks of manifests against the node's trust roots, cached by
 * manifest digest: a manifest never changes, so its verdict holds until the
 * trust roots do (setRoots() forgets every verdict).
 */
import type { ImageManifest } from '../../oci/types.js';
import type { SignatureState } from '../../policy/signature-policy.js';
import { hasBundle, parseBundle, verifyBundle } from '../../signature/bundle.js';
import { SignatureCheckError } from '../../signature/errors.js';
import { signedMessage } from '../../signature/payload.js';
import type { X509Certificate } from '../../signature/x509.js';

const DEFAULT_CACHE_ENTRIES = 256;

export class ManifestSignatures {
  private roots: readonly X509Certificate[];
  private readonly cache = new Map<string, Promise<SignatureState>>();

  constructor(roots: readonly X509Certificate[], private readonly cacheEntries = DEFAULT_CACHE_ENTRIES) {
    this.roots = roots;
  }

  get rootCount(): number {
    return this.roots.length;
  }

  /** New trust roots (a reload): verdicts made with the old ones are dropped. */
  setRoots(roots: readonly X509Certificate[]): void {
    this.roots = roots;
    this.cache.clear();
  }

  /** The manifest's signature state; `manifestDigest` is its checked digest, `image` names it in messages. */
  check(manifestDigest: string, manifest: ImageManifest, image: string): Promise<SignatureState> {
    const cached = this.cache.get(manifestDigest);
    if (cached) {
      this.cache.delete(manifestDigest);
      this.cache.set(manifestDigest, cached);
      return cached;
    }
    const verdict = this.verify(manifestDigest, manifest, image);
    this.cache.set(manifestDigest, verdict);
    if (this.cache.size > this.cacheEntries) this.cache.delete(this.cache.keys().next().value!);
    // Only verdicts are kept; an unexpected failure is tried again next time.
    verdict.catch(() => this.cache.delete(manifestDigest));
    return verdict;
  }

  private async verify(manifestDigest: string, manifest: ImageManifest, image: string): Promise<SignatureState> {
    if (!hasBundle(manifest.annotations)) return { state: 'unsigned' };
    const subject = `image ${image} (manifest ${manifestDigest})`;
    try {
      const bundle = parseBundle(manifest.annotations, subject);
      await verifyBundle(bundle, signedMessage(manifest), this.roots, subject);
      return { state: 'verified', signer: bundle.leaf.subject };
    } catch (err) {
      if (!(err instanceof SignatureCheckError)) throw err;
      return { state: 'failed', check: err.check, detail: err.detail, hint: err.hint };
    }
  }
}
