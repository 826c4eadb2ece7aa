/**
 * A typed CRI (runtime.v1) client for tests: the calls kubelet makes, as
 * promises with a deadline each, against containerd's socket (CRI is served
 * there) or later the CRI proxy's. The .proto is loaded at run time the way
 * the daemons load theirs (snapshotter/core/proto.ts), so the types in
 * snapshotter/gen/ describe exactly what arrives.
 */
import { credentials, type CallOptions, type requestCallback, type ServiceError } from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadProto } from '../../snapshotter/core/proto.js';
import type { ProtoGrpcType } from '../../snapshotter/gen/api.js';
import type { AuthConfig } from '../../snapshotter/gen/runtime/v1/AuthConfig.js';
import type { Container__Output } from '../../snapshotter/gen/runtime/v1/Container.js';
import type { ContainerConfig } from '../../snapshotter/gen/runtime/v1/ContainerConfig.js';
import type { ContainerFilter } from '../../snapshotter/gen/runtime/v1/ContainerFilter.js';
import type { ContainerState__Output } from '../../snapshotter/gen/runtime/v1/ContainerState.js';
import type { ContainerStatus__Output } from '../../snapshotter/gen/runtime/v1/ContainerStatus.js';
import type { ContainerStatusResponse__Output } from '../../snapshotter/gen/runtime/v1/ContainerStatusResponse.js';
import type { CreateContainerResponse__Output } from '../../snapshotter/gen/runtime/v1/CreateContainerResponse.js';
import type { ExecSyncResponse__Output } from '../../snapshotter/gen/runtime/v1/ExecSyncResponse.js';
import type { Image__Output } from '../../snapshotter/gen/runtime/v1/Image.js';
import type { ImageServiceClient } from '../../snapshotter/gen/runtime/v1/ImageService.js';
import type { ImageStatusResponse__Output } from '../../snapshotter/gen/runtime/v1/ImageStatusResponse.js';
import type { ListContainersResponse__Output } from '../../snapshotter/gen/runtime/v1/ListContainersResponse.js';
import type { ListImagesResponse__Output } from '../../snapshotter/gen/runtime/v1/ListImagesResponse.js';
import type { PodSandboxConfig } from '../../snapshotter/gen/runtime/v1/PodSandboxConfig.js';
import type { PullImageResponse__Output } from '../../snapshotter/gen/runtime/v1/PullImageResponse.js';
import type { RunPodSandboxResponse__Output } from '../../snapshotter/gen/runtime/v1/RunPodSandboxResponse.js';
import type { RuntimeServiceClient } from '../../snapshotter/gen/runtime/v1/RuntimeService.js';
import type { VersionResponse__Output } from '../../snapshotter/gen/runtime/v1/VersionResponse.js';

export const CRI_PROTO = 'k8s/cri/runtime/v1/api.proto';

/** A failed CRI call: the method, and the gRPC status code and details the server sent. */
export class CriCallError extends Error {
  readonly method: string;
  /** gRPC status code (grpc-js `status`). */
  readonly code: number;
  readonly details: string;

  constructor(method: string, cause: ServiceError) {
    super(`CRI ${method} failed: ${cause.details || cause.message} (gRPC code ${cause.code})`, { cause });
    this.name = 'CriCallError';
    this.method = method;
    this.code = cause.code;
    this.details = cause.details;
  }
}

export interface CriClientOptions {
  /** Deadline of each call unless the method takes its own (default 60 s: a first PullImage may unpack). */
  timeoutMs?: number;
}

let proto: ProtoGrpcType | undefined;

export class CriClient {
  readonly runtime: RuntimeServiceClient;
  readonly images: ImageServiceClient;
  readonly #timeoutMs: number;

  /** `socket`: a unix socket path, e.g. containerd's grpc address. */
  constructor(socket: string, options: CriClientOptions = {}) {
    proto ??= loadProto<ProtoGrpcType>(CRI_PROTO);
    const address = `unix://${socket}`;
    this.runtime = new proto.runtime.v1.RuntimeService(address, credentials.createInsecure());
    this.images = new proto.runtime.v1.ImageService(address, credentials.createInsecure());
    this.#timeoutMs = options.timeoutMs ?? 60_000;
  }

  close(): void {
    this.runtime.close();
    this.images.close();
  }

  /**
   * Resolves once the runtime answers Version; containerd's CRI plugin
   * refuses calls for a moment after containerd itself is up.
   */
  async waitReady(timeoutMs = 20_000): Promise<VersionResponse__Output> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await this.version(2_000);
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`CRI did not become ready within ${timeoutMs} ms`, { cause: err });
        await sleep(100);
      }
    }
  }

  version(timeoutMs?: number): Promise<VersionResponse__Output> {
    return this.#call<VersionResponse__Output>('Version', (o, done) => this.runtime.Version({ version: 'v1' }, o, done), timeoutMs);
  }

  async runPodSandbox(config: PodSandboxConfig, runtimeHandler = ''): Promise<string> {
    const request = { config, runtime_handler: runtimeHandler };
    const response = await this.#call<RunPodSandboxResponse__Output>('RunPodSandbox', (o, done) => this.runtime.RunPodSandbox(request, o, done));
    return response.pod_sandbox_id;
  }

  async stopPodSandbox(podSandboxId: string): Promise<void> {
    await this.#call<unknown>('StopPodSandbox', (o, done) => this.runtime.StopPodSandbox({ pod_sandbox_id: podSandboxId }, o, done));
  }

  async removePodSandbox(podSandboxId: string): Promise<void> {
    await this.#call<unknown>('RemovePodSandbox', (o, done) => this.runtime.RemovePodSandbox({ pod_sandbox_id: podSandboxId }, o, done));
  }

  async createContainer(podSandboxId: string, config: ContainerConfig, sandboxConfig: PodSandboxConfig): Promise<string> {
    const request = { pod_sandbox_id: podSandboxId, config, sandbox_config: sandboxConfig };
    const response = await this.#call<CreateContainerResponse__Output>('CreateContainer', (o, done) => this.runtime.CreateContainer(request, o, done));
    return response.container_id;
  }

  async startContainer(containerId: string): Promise<void> {
    await this.#call<unknown>('StartContainer', (o, done) => this.runtime.StartContainer({ container_id: containerId }, o, done));
  }

  /** `timeoutSeconds`: grace period before SIGKILL. */
  async stopContainer(containerId: string, timeoutSeconds = 0): Promise<void> {
    const request = { container_id: containerId, timeout: timeoutSeconds };
    await this.#call<unknown>('StopContainer', (o, done) => this.runtime.StopContainer(request, o, done));
  }

  async removeContainer(containerId: string): Promise<void> {
    await this.#call<unknown>('RemoveContainer', (o, done) => this.runtime.RemoveContainer({ container_id: containerId }, o, done));
  }

  containerStatus(containerId: string, verbose = false): Promise<ContainerStatusResponse__Output> {
    const request = { container_id: containerId, verbose };
    return this.#call<ContainerStatusResponse__Output>('ContainerStatus', (o, done) => this.runtime.ContainerStatus(request, o, done));
  }

  async listContainers(filter?: ContainerFilter): Promise<Container__Output[]> {
    const request = { filter: filter ?? null };
    return (await this.#call<ListContainersResponse__Output>('ListContainers', (o, done) => this.runtime.ListContainers(request, o, done))).containers;
  }

  /** Runs `cmd` in a running container; `timeoutSeconds` 0 means none. */
  execSync(containerId: string, cmd: string[], timeoutSeconds = 10): Promise<ExecSyncResponse__Output> {
    const request = { container_id: containerId, cmd, timeout: timeoutSeconds };
    return this.#call<ExecSyncResponse__Output>('ExecSync', (o, done) => this.runtime.ExecSync(request, o, done), (timeoutSeconds + 5) * 1000);
  }

  /** Pulls `image` (a reference); returns the image id containerd resolved it to. */
  async pullImage(image: string, options: { auth?: AuthConfig; sandboxConfig?: PodSandboxConfig } = {}): Promise<string> {
    const request = { image: { image }, auth: options.auth ?? null, sandbox_config: options.sandboxConfig ?? null };
    return (await this.#call<PullImageResponse__Output>('PullImage', (o, done) => this.images.PullImage(request, o, done))).image_ref;
  }

  /** The image, or null when the runtime does not have it. */
  async imageStatus(image: string): Promise<Image__Output | null> {
    const request = { image: { image }, verbose: false };
    return (await this.#call<ImageStatusResponse__Output>('ImageStatus', (o, done) => this.images.ImageStatus(request, o, done))).image;
  }

  async listImages(image?: string): Promise<Image__Output[]> {
    const request = { filter: image === undefined ? null : { image: { image } } };
    return (await this.#call<ListImagesResponse__Output>('ListImages', (o, done) => this.images.ListImages(request, o, done))).images;
  }

  async removeImage(image: string): Promise<void> {
    await this.#call<unknown>('RemoveImage', (o, done) => this.images.RemoveImage({ image: { image } }, o, done));
  }

  /** Polls ContainerStatus until the container reaches `state`; fails with the last status seen. */
  async waitForContainerState(containerId: string, state: ContainerState__Output, timeoutMs = 30_000): Promise<ContainerStatus__Output> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const { status } = await this.containerStatus(containerId);
      if (status?.state === state) return status;
      if (Date.now() > deadline) {
        throw new Error(`container ${containerId} did not reach ${state} within ${timeoutMs} ms; last status: ${JSON.stringify(status)}`);
      }
      await sleep(100);
    }
  }

  /** One unary call with a deadline; a failure becomes a CriCallError naming the method. */
  #call<Res>(method: string, invoke: (options: CallOptions, done: requestCallback<Res>) => unknown, timeoutMs = this.#timeoutMs): Promise<Res> {
    return new Promise((resolve, reject) => {
      invoke({ deadline: Date.now() + timeoutMs }, (err, response) => {
        if (err) reject(new CriCallError(method, err));
        else if (response === undefined) reject(new Error(`CRI ${method}: empty response`));
        else resolve(response);
      });
    });
  }
}
