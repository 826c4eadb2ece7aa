/**
 * A Snapshotter with the pull path and the rootfs policy over fake containerd
 * services (containerd-fakes.ts), fake layers and fake mounts: what the
 * unit tests of the fast path, Commit from the blob and read-only roots use.
 * With `trust`, layers are checked against image signatures too (the
 * refusal reasons are collected in `refusals`); `extra` adds the registry
 * client and the unpack scratch memory.
 */
import type { ExecutionContext } from 'ava';
import { wallClock } from '../../snapshotter/core/clock.js';
import type { ReadOnlyMode } from '../../snapshotter/core/config.js';
import { silentLogger } from '../../snapshotter/core/log.js';
import { ImagePatterns } from '../../snapshotter/policy/image-patterns.js';
import { ImageLayers } from '../../snapshotter/service/containerd/image-layers.js';
import type { SignatureRefusalReason } from '../../snapshotter/policy/signature-policy.js';
import type { X509Certificate } from '../../snapshotter/signature/x509.js';
import { LayerBlobs } from '../../snapshotter/service/pull/layer-blobs.js';
import { RootfsPolicy } from '../../snapshotter/service/rootfs/policy.js';
import type { SnapshotterOptions } from '../../snapshotter/service/snapshotter.js';
import type { LayerSourceKind } from '../../snapshotter/service/layers/store.js';
import { ImageTrust } from '../../snapshotter/service/trust/image-trust.js';
import { ManifestSignatures } from '../../snapshotter/service/trust/manifest-signatures.js';
import { FakeContent, FakeImages } from './containerd-fakes.js';
import { fakeSnapshotter, type FakeSnapshotter } from './snapshotter-fakes.js';

export interface PullFakes {
  f: FakeSnapshotter;
  /** Where each layer the snapshotter built came from, in order. */
  built: LayerSourceKind[];
  content: FakeContent;
  images: FakeImages;
  /** Refusal reasons the signature checks reported, in order. */
  refusals: SignatureRefusalReason[];
}

export interface TrustFakes {
  roots: readonly X509Certificate[];
  /** signatures.required_images. */
  required?: string[];
}

export const TEST_MOUNTPOINTS = { dirs: ['/proc', '/dev', '/tmp'], files: ['/etc/hosts', '/etc/resolv.conf'] };

export async function pullFakes(
  t: ExecutionContext,
  rootfs: { mode?: ReadOnlyMode; protect?: string[] } = {},
  trust?: TrustFakes,
  extra: Pick<SnapshotterOptions, 'registry' | 'scratch'> = {},
): Promise<PullFakes> {
  const content = new FakeContent();
  const images = new FakeImages();
  const imageLayers = new ImageLayers(content, images, silentLogger);
  const blobs = new LayerBlobs({ content, imageLayers, logger: silentLogger, pollMs: 5, stallMs: 200 });
  const policy = new RootfsPolicy({
    mode: rootfs.mode ?? 'protected',
    patterns: new ImagePatterns(rootfs.protect ?? []),
    imageLayers,
    signedImages: trust !== undefined,
    mountpoints: TEST_MOUNTPOINTS,
    logger: silentLogger,
  });
  const refusals: SignatureRefusalReason[] = [];
  const imageTrust = trust && new ImageTrust({
    imageLayers,
    signatures: new ManifestSignatures(trust.roots),
    required: new ImagePatterns(trust.required ?? []),
    logger: silentLogger,
    onRefusal: (reason) => refusals.push(reason),
  });
  const built: LayerSourceKind[] = [];
  const onLayerBuilt = (from: LayerSourceKind) => void built.push(from);
  const f = await fakeSnapshotter(wallClock(), { blobs, rootfs: policy, ...(imageTrust ? { trust: imageTrust } : {}), onLayerBuilt, ...extra });
  t.teardown(() => f.dispose());
  return { f, content, images, refusals, built };
}
