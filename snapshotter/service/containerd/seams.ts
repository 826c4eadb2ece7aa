/**
 * Wiring of everything the snapshotter asks containerd: one connection to
 * `containerd_address`, the layer blobs of the pull path (and the registry
 * client for those containerd has not fetched yet), the signature
 * checks of the images layers belong to, and the rootfs policy that reads
 * the namespace's images (signed images are protected). Nothing connects
 * until a request needs containerd.
 */
import type { SnapshotterConfig } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import { ImagePatterns } from '../../policy/image-patterns.js';
import type { SignatureRefusalReason } from '../../policy/signature-policy.js';
import type { X509Certificate } from '../../signature/x509.js';
import { LayerBlobs } from '../pull/layer-blobs.js';
import { RegistryClient } from '../registry/client.js';
import { RootfsPolicy } from '../rootfs/policy.js';
import { ImageTrust } from '../trust/image-trust.js';
import { ManifestSignatures } from '../trust/manifest-signatures.js';
import { ContainerdConnection } from './connection.js';
import { GrpcContentClient } from './content.js';
import { ImageLayers } from './image-layers.js';
import { GrpcImageClient } from './images.js';

export interface ContainerdSeams {
  blobs: LayerBlobs;
  /** Where blobs containerd has not fetched yet come from, unless registry.fetch_layers is off. */
  registry: RegistryClient | undefined;
  rootfs: RootfsPolicy;
  trust: ImageTrust;
  close(): void;
}

export interface TrustSeamOptions {
  trustRoots: readonly X509Certificate[];
  onRefusal?: (reason: SignatureRefusalReason) => void;
}

export function containerdSeams(config: SnapshotterConfig, logger: Logger, trust: TrustSeamOptions): ContainerdSeams {
  const connection = new ContainerdConnection(config.containerdAddress);
  const content = new GrpcContentClient(connection);
  const imageLayers = new ImageLayers(content, new GrpcImageClient(connection), logger);
  return {
    blobs: new LayerBlobs({ content, imageLayers, logger }),
    registry: config.registry.fetchLayers ? new RegistryClient({ hostsDir: config.registry.configPath, logger }) : undefined,
    rootfs: new RootfsPolicy({
      mode: config.rootfs.readOnly,
      patterns: new ImagePatterns(config.rootfs.protectedImages),
      imageLayers,
      // A node that can verify no signature (no roots, nothing required) has no signed images to protect.
      signedImages: trust.trustRoots.length > 0 || config.signatures.requiredImages.length > 0,
      mountpoints: { dirs: config.rootfs.mountpointDirs, files: config.rootfs.mountpointFiles },
      logger,
    }),
    trust: new ImageTrust({
      imageLayers,
      signatures: new ManifestSignatures(trust.trustRoots),
      required: new ImagePatterns(config.signatures.requiredImages),
      logger,
      ...(trust.onRefusal ? { onRefusal: trust.onRefusal } : {}),
    }),
    close: () => connection.close(),
  };
}
