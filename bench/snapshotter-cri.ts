/**
 * The CRI pull path, the one Kubernetes nodes take: `PullImage` from a
 * registry (Debian's docker-registry on loopback, the image pushed once with
 * skopeo), which gives every layer's Prepare the snapshot labels the
 * integrity snapshotter's fast path needs.
 *
 * CRI's config names one snapshotter, so each side has its own containerd,
 * both started the same way (test/support/containerd.ts: same version,
 * config, log level, registry mirror; roots on the same file system), both
 * running the whole time, only one of them working at any moment. Per round,
 * each side in turn:
 *
 *   - `PullImage` into an empty content store: resolve, fetch, unpack;
 *   - `runs` containers in one pod sandbox (started once per side, before
 *     the rounds): CreateContainer + StartContainer of `/bin/echo ready`,
 *     the time to its first output in the CRI log; the first start after the
 *     pull is counted apart (cold: the integrity snapshotter mounts the
 *     image's layers then), the others are warm;
 *   - `RemoveImage`: the last reference goes with a synchronous garbage
 *     collection, which deletes the image's content and snapshots. That they
 *     are gone is checked, so every pull starts from the same state.
 */
import { stat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Containerd } from '../test/support/containerd.js';
import { containerConfig, readCriLog, runPod, streamText, type Pod } from '../test/support/cri-pod.js';
import { startIntegrityStack, type IntegrityStack, type LogLine } from '../test/support/integrity-snapshotter.js';
import { Registry } from '../test/support/registry.js';
import { peakRssMiB, seconds, secondsSince, settleDisk } from './measure.js';
import { median, ms, s } from './report.js';
import { IMAGE_TAG, type RootfsImage } from './rootfs-image.js';
import { integrityOverOverlayfs, SIDES, sidesInOrder, type BenchOptions, type Side } from './sides.js';

/** Image references name this host; each containerd's hosts.toml sends it to the local registry. */
const HOST = 'bench.registry.test';
const REPOSITORY = 'bench/rootfs';
const IMAGE = `${HOST}/${REPOSITORY}:${IMAGE_TAG}`;

/** One side: its containerd, its pod sandbox, and what its snapshotter holds with no image pulled. */
interface Node {
  side: Side;
  containerd: Containerd;
  pod: Pod;
  /** The snapshots before any pull (the pause image's layer, the sandbox's root). */
  idleSnapshots: number;
  /** The integrity side's stack (its daemon's log says which path each layer took). */
  stack?: IntegrityStack;
}

/** How the integrity snapshotter built the layers of one pull, from its log. */
interface LayerPaths {
  /** Converted at Prepare; containerd unpacked nothing. */
  fast: number;
  /** containerd unpacked into a writable snapshot (its blob was not fetched yet), built from the blob at Commit. */
  unpacked: number;
}

interface Round {
  pull: Record<Side, number>;
  /** The first container start after the pull. */
  cold: Record<Side, number>;
  /** The later ones. */
  warm: Record<Side, number[]>;
  paths: LayerPaths;
}

let containers = 0;

/** CreateContainer + StartContainer: seconds until the container's first output is in its CRI log. */
async function startLatency(node: Node): Promise<number> {
  const { cri } = node.containerd;
  const config = containerConfig({ name: `bench-${++containers}`, image: IMAGE, command: ['/bin/echo', 'ready'] });
  const log = join(node.pod.logDirectory, config.log_path!);
  const start = process.hrtime.bigint();
  const id = await cri.createContainer(node.pod.id, config, node.pod.config);
  try {
    await cri.startContainer(id);
    // CRI writes the log line as the output arrives; a 2 ms poll is the resolution.
    for (const deadline = Date.now() + 30_000; ((await stat(log).catch(() => undefined))?.size ?? 0) === 0; await sleep(2)) {
      if (Date.now() > deadline) throw new Error(`${node.side}: no output from container ${id} within 30 s`);
    }
    const latency = secondsSince(start);
    const status = await cri.waitForContainerState(id, 'CONTAINER_EXITED');
    const output = streamText(await readCriLog(log), 'stdout');
    if (status.exit_code !== 0 || output !== 'ready\n') {
      throw new Error(`${node.side}: the container exited ${status.exit_code} with ${JSON.stringify(output)}`);
    }
    return latency;
  } finally {
    await cri.removeContainer(id);
    await rm(log, { force: true });
  }
}

async function snapshotCount(node: Node): Promise<number> {
  const { stdout } = await node.containerd.ctr(['snapshots', '--snapshotter', node.side, 'ls']);
  return stdout.trim().split('\n').length - 1;
}

/** Fails unless RemoveImage left the content store and the snapshotter as they were before the pull. */
async function checkCollected(node: Node, image: RootfsImage): Promise<void> {
  const { stdout } = await node.containerd.ctr(['content', 'ls', '--quiet']);
  const kept = image.layerDigests.filter((digest) => stdout.includes(digest));
  const snapshots = await snapshotCount(node);
  if (kept.length > 0 || snapshots !== node.idleSnapshots) {
    throw new Error(`${node.side}: after RemoveImage containerd still holds ${kept.length} layer blobs and ${snapshots - node.idleSnapshots} ` +
      'extra snapshots; the next pull would not start from an empty content store');
  }
}

function layerPaths(lines: readonly LogLine[]): LayerPaths {
  const count = (msg: string) => lines.filter((l) => l.msg === msg).length;
  return {
    fast: count('layer converted from its blob at Prepare; containerd skips its unpack'),
    unpacked: count('layer blob not in containerd yet: containerd unpacks into a writable snapshot'),
  };
}

async function round(nodes: Record<Side, Node>, image: RootfsImage, order: readonly Side[], runs: number): Promise<Round> {
  const result: Round = { pull: { overlayfs: 0, integrity: 0 }, cold: { overlayfs: 0, integrity: 0 }, warm: { overlayfs: [], integrity: [] }, paths: { fast: 0, unpacked: 0 } };
  for (const side of order) {
    const node = nodes[side];
    const mark = node.stack?.snapshotter.logs().length ?? 0;
    await settleDisk(nodes.integrity.stack!.snapshotter.root);
    result.pull[side] = await seconds(() => node.containerd.withLog(() => node.containerd.cri.pullImage(IMAGE)));
    if (node.stack) result.paths = layerPaths(node.stack.snapshotter.logs().slice(mark));
    for (let n = 0; n < runs; n++) {
      const latency = await startLatency(node);
      if (n === 0) result.cold[side] = latency;
      else result.warm[side].push(latency);
    }
    await node.containerd.cri.removeImage(IMAGE);
    await checkCollected(node, image);
  }
  return result;
}

async function startNode(side: Side, containerd: Containerd, stack?: IntegrityStack): Promise<Node> {
  await containerd.importPauseImage();
  const pod = await runPod(containerd.cri, `bench-${side}`);
  const node: Node = { side, containerd, pod, idleSnapshots: 0, ...(stack ? { stack } : {}) };
  node.idleSnapshots = await snapshotCount(node);
  return node;
}

/** Runs the CRI pull benchmark on `image` and prints every round and the ratios. */
export async function benchCriPull(image: RootfsImage, options: BenchOptions): Promise<void> {
  const registry = await Registry.start();
  let stack: IntegrityStack | undefined;
  let overlay: Containerd | undefined;
  const pods: Pod[] = [];
  try {
    await registry.push(`${image.layout}:${IMAGE_TAG}`, `${REPOSITORY}:${IMAGE_TAG}`);
    const registryMirrors = { [HOST]: registry.url };
    // The daemon logs as in production (info): debug logging costs time per request.
    stack = await startIntegrityStack({ snapshotterLogLevel: 'info', registryMirrors });
    overlay = await Containerd.start({ snapshotter: 'overlayfs', registryMirrors });
    const nodes: Record<Side, Node> = {
      integrity: await startNode('integrity', stack.containerd, stack),
      overlayfs: await startNode('overlayfs', overlay),
    };
    pods.push(nodes.integrity.pod, nodes.overlayfs.pod);
    console.log(`\n== CRI PullImage from ${registry.url}: a containerd per side (roots ${overlay.root}, ${stack.containerd.root}; snapshotter ${stack.snapshotter.root}) ==`);

    const started = Date.now();
    await round(nodes, image, SIDES, Math.min(options.runs, 2));
    console.log(`warm-up round (not counted): ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const results: Round[] = [];
    for (let r = 1; r <= options.rounds; r++) {
      const result = await round(nodes, image, sidesInOrder(r), options.runs);
      results.push(result);
      console.log(`round ${r}: pull ${SIDES.map((side) => `${side} ${s(result.pull[side])}`).join(', ')} ` +
        `(integrity: ${result.paths.fast} layers converted at Prepare, ${result.paths.unpacked} unpacked by containerd); ` +
        `start cold ${SIDES.map((side) => `${side} ${ms(result.cold[side])}`).join(', ')}` +
        (options.runs > 1 ? `, warm ${SIDES.map((side) => `${side} ${ms(median(result.warm[side]))}`).join(', ')} (median of ${options.runs - 1})` : ''));
    }
    const pullOf = (side: Side) => median(results.map((r) => r.pull[side]));
    const coldOf = (side: Side) => median(results.map((r) => r.cold[side]));
    const warmOf = (side: Side) => median(results.flatMap((r) => r.warm[side]));
    console.log(`medians: pull + unpack ${SIDES.map((side) => `${side} ${s(pullOf(side))}`).join(', ')}; ` +
      `start (create + start to first output) first after the pull ${SIDES.map((side) => `${side} ${ms(coldOf(side))}`).join(', ')}` +
      (options.runs > 1 ? `, later ${SIDES.map((side) => `${side} ${ms(warmOf(side))}`).join(', ')}` : ''));
    console.log(`ratios integrity/overlayfs, geometric means of the per-round ratios:`);
    console.log(`  pull + unpack ${integrityOverOverlayfs(results, (r, side) => r.pull[side])} (target <= 1.00×)`);
    console.log(`  start latency, first after the pull ${integrityOverOverlayfs(results, (r, side) => r.cold[side])} (target <= 1.20×)` +
      (options.runs > 1 ? `, later starts ${integrityOverOverlayfs(results, (r, side) => median(r.warm[side]))} (target <= 1.20×)` : ''));
    const rss = peakRssMiB(stack.snapshotter.pid);
    if (rss !== undefined) console.log(`snapshotter daemon peak RSS: ${rss.toFixed(0)} MiB`);
  } finally {
    for (const pod of pods) await pod.remove().catch(() => undefined);
    await overlay?.stop();
    await stack?.stop();
    await registry.stop();
  }
}
