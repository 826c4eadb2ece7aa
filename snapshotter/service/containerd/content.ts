/**
 * containerd's content store as the snapshotter reads it: is a blob there,
 * its bytes, and which blobs a pull is still fetching. `ContentClient` is the
 * seam; `GrpcContentClient` talks to containerd, tests use a fake.
 */
import type * as grpc from '@grpc/grpc-js';
import { NotFoundError } from '../../core/errors.js';
import type { ContainerdConnection } from './connection.js';
import type { ListStatusesResponse__Output } from '../../gen/containerd/services/content/v1/ListStatusesResponse.js';
import type { ReadContentResponse__Output } from '../../gen/containerd/services/content/v1/ReadContentResponse.js';

export interface BlobInfo {
  digest: string;
  size: number;
}

export interface ContentClient {
  /** The blob's size, or undefined when namespace `ns` has no such (complete) blob. */
  info(ns: string, digest: string): Promise<BlobInfo | undefined>;
  /** The whole blob, in order. Errors (also a blob that vanished) surface in the consuming loop. */
  read(ns: string, digest: string): AsyncIterable<Uint8Array>;
  /**
   * The ingests in `ns`: blobs being written (or left half-written by a
   * fetch that was cancelled; containerd keeps them to resume). A pull's
   * fetches use containerd's remotes.MakeRefKey, `<kind>-<digest>` (e.g.
   * `layer-sha256:…`), so a ref ending in a digest is that blob.
   */
  ingests(ns: string): Promise<Ingest[]>;
}

export interface Ingest {
  ref: string;
  /** Bytes written so far. */
  offset: number;
}

export class GrpcContentClient implements ContentClient {
  constructor(private readonly connection: ContainerdConnection) {}

  async info(ns: string, digest: string): Promise<BlobInfo | undefined> {
    const c = this.connection;
    try {
      const { info } = await c.unary<{ info: { digest: string; size: string } | null }>(`content Info ${digest}`, (cb) =>
        c.content.Info({ digest }, c.metadata(ns), c.unaryOptions(), cb),
      );
      return info ? { digest: info.digest, size: Number(info.size) } : undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async *read(ns: string, digest: string): AsyncIterable<Uint8Array> {
    const c = this.connection;
    const stream = c.content.Read({ digest, offset: 0, size: 0 }, c.metadata(ns));
    try {
      for await (const message of stream as AsyncIterable<ReadContentResponse__Output>) yield message.data;
    } catch (err) {
      throw c.failure(err as grpc.ServiceError, `content Read ${digest}`);
    } finally {
      stream.cancel();
    }
  }

  async ingests(ns: string): Promise<Ingest[]> {
    const c = this.connection;
    const { statuses } = await c.unary<ListStatusesResponse__Output>('content ListStatuses', (cb) =>
      c.content.ListStatuses({ filters: [] }, c.metadata(ns), c.unaryOptions(), cb),
    );
    return statuses.map((s) => ({ ref: s.ref, offset: Number(s.offset) }));
  }
}
