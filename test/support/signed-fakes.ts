/**
 * Signing for unit tests of signed images on the node: a P-256 chain (root →
 * intermediate → leaf, from pki.ts) and `sealed()`, a manifest transform for
 * addImage() (containerd-fakes.ts) that writes the signed layer root-hash
 * list and the bundle the way `integrityctl image seal` does — without
 * converting anything, so the test says which root hashes are signed.
 */
import { LAYER_ROOT_HASHES_ANNOTATION, formatLayerRootHashes } from '../../snapshotter/oci/annotations.js';
import type { Annotations, ImageManifest } from '../../snapshotter/oci/types.js';
import { bundleAnnotations, createSigner, signMessage, type Signer } from '../../snapshotter/signature/bundle.js';
import { signedMessage } from '../../snapshotter/signature/payload.js';
import type { X509Certificate } from '../../snapshotter/signature/x509.js';
import { issue, type Issued } from './pki.js';

export interface TestChain {
  root: Issued;
  intermediate: Issued;
  leaf: Issued;
  signer: Signer;
  /** The trust roots that accept it. */
  roots: X509Certificate[];
}

/** A root CA, an intermediate CA under it and a P-256 signing leaf; `intermediate` overrides its options. */
export async function testChain(name = 'Test', intermediate: Partial<Parameters<typeof issue>[0]> = {}): Promise<TestChain> {
  const root = await issue({ subject: `CN=${name} Root CA`, ca: true });
  const inter = await issue({ subject: `CN=${name} Intermediate CA`, issuer: root, ca: { pathLength: 0 }, ...intermediate });
  const leaf = await issue({ subject: `CN=${name} signer`, issuer: inter });
  const signer = createSigner({ key: leaf.keyPem, cert: leaf.certPem, chain: inter.certPem + root.certPem });
  return { root, intermediate: inter, leaf, signer, roots: [root.cert] };
}

export interface SealOptions {
  /** Written as the signed layer root-hash list; omitted: a Delivery Kit style image without it. */
  layerRootHashes?: readonly string[];
  annotations?: Annotations;
}

/** A manifest transform: annotations, then the bundle over the result. */
export function sealed(signer: Signer, options: SealOptions = {}): (manifest: ImageManifest) => ImageManifest {
  return (manifest) => {
    const annotations: Annotations = { ...manifest.annotations, ...options.annotations };
    if (options.layerRootHashes) annotations[LAYER_ROOT_HASHES_ANNOTATION] = formatLayerRootHashes(options.layerRootHashes);
    const unsigned = { ...manifest, annotations };
    return { ...unsigned, annotations: { ...annotations, ...bundleAnnotations(signMessage(signer, signedMessage(unsigned))) } };
  };
}

/** The root hash FakeLayerStore gives its `n`-th commit (1-based): a stand-in for a layer's real root hash. */
export function fakeRootHash(n: number): string {
  return String(n).padStart(64, '0');
}
