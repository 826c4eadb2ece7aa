/**
 * Wiring of everything the snapshotter asks containerd: one connection to
 * `containerd_address`, the layer blobs of the pull path and the rootfs
 * policy that reads the namespace's images. Nothing connects until a
 * request needs containerd.
 */
import type { SnapshotterConfig } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import { ImagePatterns } from '../../policy/image-patterns.js';
import { LayerBlobs } from '../pull/layer-blobs.js';
import { RootfsPolicy } from '../rootfs/policy.js';
import { ContainerdConnection } from './connection.js';
import { GrpcContentClient } from './content.js';
import { ImageLayers } from './image-layers.js';
import { GrpcImageClient } from './images.js';

export interface ContainerdSeams {
  blobs: LayerBlobs;
  rootfs: RootfsPolicy;
  close(): void;
}

export function containerdSeams(config: SnapshotterConfig, logger: Logger): ContainerdSeams {
  const connection = new ContainerdConnection(config.containerdAddress);
  const content = new GrpcContentClient(connection);
  const imageLayers = new ImageLayers(content, new GrpcImageClient(connection), logger);
  return {
    blobs: new LayerBlobs({ content, imageLayers, logger }),
    rootfs: new RootfsPolicy({
      mode: config.rootfs.readOnly,
      patterns: new ImagePatterns(config.rootfs.protectedImages),
      imageLayers,
      mountpoints: { dirs: config.rootfs.mountpointDirs, files: config.rootfs.mountpointFiles },
      logger,
    }),
    close: () => connection.close(),
  };
}
