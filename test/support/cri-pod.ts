/**
 * Pods the way kubelet asks for them, reduced to what tests here need: a
 * host-network sandbox (no CNI exists here) and containers whose output lands
 * in CRI's log files. `runToExit` is the whole round trip a test repeats
 * with each snapshotter: sandbox, create, start, wait, status, log, cleanup.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ContainerConfig } from '../../snapshotter/gen/runtime/v1/ContainerConfig.js';
import type { ContainerStatus__Output } from '../../snapshotter/gen/runtime/v1/ContainerStatus.js';
import type { PodSandboxConfig } from '../../snapshotter/gen/runtime/v1/PodSandboxConfig.js';
import type { CriClient } from './cri-client.js';

/**
 * A host-network pod sandbox. No hostname: kubelet leaves it empty for host
 * network, and runc refuses to set one without a UTS namespace of its own.
 */
export function hostNetworkPod(name: string, logDirectory: string, namespace = 'default'): PodSandboxConfig {
  return {
    metadata: { name, namespace, uid: `${name}-${randomBytes(4).toString('hex')}`, attempt: 0 },
    log_directory: logDirectory,
    labels: { 'io.kubernetes.pod.name': name, 'io.kubernetes.pod.namespace': namespace },
    linux: { security_context: { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

export interface ContainerSpec {
  name: string;
  image: string;
  /** Replaces the image's entrypoint. */
  command?: string[];
  args?: string[];
  env?: Record<string, string>;
  /** Default `<name>.log`, relative to the sandbox's log directory. */
  logPath?: string;
  /** Host directories or files bind-mounted into the container (kubelet's volumes). */
  mounts?: { containerPath: string; hostPath: string; readonly?: boolean }[];
}

export function containerConfig(spec: ContainerSpec): ContainerConfig {
  return {
    metadata: { name: spec.name, attempt: 0 },
    image: { image: spec.image },
    command: spec.command ?? [],
    args: spec.args ?? [],
    envs: Object.entries(spec.env ?? {}).map(([key, value]) => ({ key, value: Buffer.from(value) })),
    log_path: spec.logPath ?? `${spec.name}.log`,
    mounts: (spec.mounts ?? []).map((m) => ({ container_path: m.containerPath, host_path: m.hostPath, readonly: m.readonly ?? false })),
  };
}

/** One line of a CRI container log: `<RFC 3339 time> <stdout|stderr> <F|P> <text>`. */
export interface CriLogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  /** False for a partial line ('P'), continued by the next. */
  full: boolean;
  text: string;
}

export async function readCriLog(path: string): Promise<CriLogLine[]> {
  const content = await readFile(path, 'utf8');
  return content.split('\n').filter(Boolean).map((line) => {
    const match = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(line);
    if (!match) throw new Error(`${path}: not a CRI log line: ${JSON.stringify(line)}`);
    return { time: match[1]!, stream: match[2] as CriLogLine['stream'], full: match[3] === 'F', text: match[4]! };
  });
}

/** The text a stream wrote, partial lines joined. */
export function streamText(lines: readonly CriLogLine[], stream: CriLogLine['stream']): string {
  return lines.filter((l) => l.stream === stream).map((l) => l.text + (l.full ? '\n' : '')).join('');
}

export interface Pod {
  id: string;
  config: PodSandboxConfig;
  logDirectory: string;
  /** Stops and removes the sandbox (and so its containers) and its log directory. */
  remove(): Promise<void>;
}

/** Runs a host-network pod sandbox with its logs in a fresh temp dir. */
export async function runPod(cri: CriClient, name: string, namespace = 'default'): Promise<Pod> {
  const logDirectory = await mkdtemp('/tmp/cri-logs-');
  const config = hostNetworkPod(name, logDirectory, namespace);
  let id: string;
  try {
    id = await cri.runPodSandbox(config);
  } catch (err) {
    await rm(logDirectory, { recursive: true, force: true });
    throw err;
  }
  return {
    id,
    config,
    logDirectory,
    async remove() {
      try {
        await cri.stopPodSandbox(id);
        await cri.removePodSandbox(id);
      } finally {
        await rm(logDirectory, { recursive: true, force: true });
      }
    },
  };
}

export interface ContainerRun {
  podId: string;
  containerId: string;
  status: ContainerStatus__Output;
  log: CriLogLine[];
}

/**
 * In `pod`: creates and starts a container, waits until it exits, and
 * returns its final status and log. The container is removed afterwards;
 * the pod is left to the caller.
 */
export async function runToExit(cri: CriClient, pod: Pod, spec: ContainerSpec, timeoutMs = 30_000): Promise<ContainerRun> {
  const config = containerConfig(spec);
  const containerId = await cri.createContainer(pod.id, config, pod.config);
  try {
    await cri.startContainer(containerId);
    const status = await cri.waitForContainerState(containerId, 'CONTAINER_EXITED', timeoutMs);
    const log = await readCriLog(join(pod.logDirectory, config.log_path!));
    return { podId: pod.id, containerId, status, log };
  } finally {
    await cri.removeContainer(containerId);
  }
}
