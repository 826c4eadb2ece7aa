/**
 * The snapshotter's client side of containerd: one gRPC channel to
 * containerd's API socket (config `containerd_address`), opened on first use,
 * shared by the content and image clients. Every call names the namespace of
 * the snapshot request it serves in the `containerd-namespace` metadata, as
 * containerd's own Go client does; unary calls have a deadline. Failures
 * become our typed errors, naming the service, the socket and the fix.
 */
import * as grpc from '@grpc/grpc-js';
import { InternalError, NotFoundError, UnavailableError, type IntegrityError } from '../../core/errors.js';
import { GrpcCode } from '../../core/grpc-status.js';
import { loadProto } from '../../core/proto.js';
import type { ProtoGrpcType as ContentProto } from '../../gen/content.js';
import type { ContentClient as ContentGrpcClient } from '../../gen/containerd/services/content/v1/Content.js';
import type { ProtoGrpcType as ImagesProto } from '../../gen/images.js';
import type { ImagesClient as ImagesGrpcClient } from '../../gen/containerd/services/images/v1/Images.js';
import { NAMESPACE_METADATA } from '../service.js';

export const DEFAULT_CALL_TIMEOUT_MS = 30_000;

export class ContainerdConnection {
  readonly address: string;
  private readonly timeoutMs: number;
  private contentClient: ContentGrpcClient | undefined;
  private imagesClient: ImagesGrpcClient | undefined;

  constructor(address: string, options: { timeoutMs?: number } = {}) {
    this.address = address;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  }

  get content(): ContentGrpcClient {
    if (!this.contentClient) {
      const proto = loadProto<ContentProto>('containerd/services/content/v1/content.proto');
      this.contentClient = new proto.containerd.services.content.v1.Content(this.target(), grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    }
    return this.contentClient;
  }

  get images(): ImagesGrpcClient {
    if (!this.imagesClient) {
      const proto = loadProto<ImagesProto>('containerd/services/images/v1/images.proto');
      this.imagesClient = new proto.containerd.services.images.v1.Images(this.target(), grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
    }
    return this.imagesClient;
  }

  /** The metadata of a call on behalf of namespace `ns`. */
  metadata(ns: string): grpc.Metadata {
    const metadata = new grpc.Metadata();
    metadata.set(NAMESPACE_METADATA, ns);
    return metadata;
  }

  /** Options of a unary call: a deadline, so a hung containerd cannot hold a snapshot request forever. */
  unaryOptions(): grpc.CallOptions {
    return { deadline: Date.now() + this.timeoutMs };
  }

  /** Runs one unary call as a promise; `what` names it in errors ("content Info sha256:…"). */
  unary<Res>(what: string, call: (callback: grpc.requestCallback<Res>) => void): Promise<Res> {
    return new Promise((resolve, reject) => {
      call((err, response) => (err ? reject(this.failure(err, what)) : resolve(response!)));
    });
  }

  /** A failed call as one of our errors: NOT_FOUND stays NOT_FOUND, a socket nobody answers names the config key. */
  failure(err: grpc.ServiceError, what: string): IntegrityError {
    const details = err.details || err.message;
    switch (err.code) {
      case GrpcCode.NOT_FOUND:
        return new NotFoundError(`containerd ${what}: ${details}`, { cause: err });
      case GrpcCode.UNAVAILABLE:
      case GrpcCode.DEADLINE_EXCEEDED:
        return new UnavailableError(`containerd at ${this.address} did not answer ${what}: ${details}`, {
          hint: 'check that containerd runs and that containerd_address in the snapshotter config is its API socket',
          cause: err,
        });
      default:
        return new InternalError(`containerd ${what} failed: ${details} (gRPC code ${err.code})`, { cause: err });
    }
  }

  close(): void {
    this.contentClient?.close();
    this.imagesClient?.close();
  }

  private target(): string {
    return `unix://${this.address}`;
  }
}

/** Layers and image documents come in messages of up to 1 MiB; leave headroom above grpc-js's 4 MiB default anyway. */
const CHANNEL_OPTIONS: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 << 20 };
