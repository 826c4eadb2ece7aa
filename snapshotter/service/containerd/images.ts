/**
 * containerd's image store as the snapshotter reads it: the images of a
 * namespace, each a name and the descriptor of its manifest or index.
 * `ImageClient` is the seam; `GrpcImageClient` talks to containerd.
 */
import type { ContainerdConnection } from './connection.js';
import type { ListImagesResponse__Output } from '../../gen/containerd/services/images/v1/ListImagesResponse.js';

export interface ImageTarget {
  mediaType: string;
  digest: string;
  size: number;
}

export interface ImageRecord {
  /** As containerd keeps it: `registry.example/app:1.0`, `registry.example/app@sha256:…`, or CRI's `sha256:<config>`. */
  name: string;
  target: ImageTarget;
}

export interface ImageClient {
  list(ns: string): Promise<ImageRecord[]>;
}

export class GrpcImageClient implements ImageClient {
  constructor(private readonly connection: ContainerdConnection) {}

  async list(ns: string): Promise<ImageRecord[]> {
    const c = this.connection;
    const { images } = await c.unary<ListImagesResponse__Output>('images List', (cb) => c.images.List({ filters: [] }, c.metadata(ns), c.unaryOptions(), cb));
    return images.flatMap((image) =>
      image.target ? [{ name: image.name, target: { mediaType: image.target.media_type, digest: image.target.digest, size: Number(image.target.size) } }] : [],
    );
  }
}
