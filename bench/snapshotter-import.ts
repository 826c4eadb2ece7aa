/**
 * The `ctr image import` path (image.Unpack: no snapshot labels, so the
 * integrity snapshotter cannot take the pull fast path): one private
 * containerd serves both sides, its built-in `overlayfs` and the proxy
 * `integrity`. Per round, each side:
 *
 *   - `ctr image import --snapshotter <side>` into an empty content store
 *     (the image is removed with `ctr images rm --sync` after each side,
 *     which collects its content and snapshots); `--no-unpack` once per
 *     round, the content part alone, to tell the unpack apart;
 *   - `ctr run --rm --snapshotter <side> <image> /bin/echo ready`: the time
 *     from starting ctr to the container's first output, `runs` times.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from '../test/support/command.js';
import { CTR } from '../test/support/containerd.js';
import { startIntegrityStack, type IntegrityStack } from '../test/support/integrity-snapshotter.js';
import { tarLayout } from '../test/support/oci-image.js';
import { peakRssMiB, seconds, settleDisk } from './measure.js';
import { median, ms, s } from './report.js';
import { IMAGE_TAG, type RootfsImage } from './rootfs-image.js';
import { integrityOverOverlayfs, SIDES, sidesInOrder, type BenchOptions, type Side } from './sides.js';

const NAMESPACE = 'bench';
const REPOSITORY = 'bench.test/rootfs';
const IMAGE = `${REPOSITORY}:${IMAGE_TAG}`;

interface Round {
  /** Seconds of `ctr image import` per side, and of `--no-unpack`. */
  import: Record<Side | 'content', number>;
  /** Seconds to the first output of each `ctr run --rm`, per side. */
  start: Record<Side, number[]>;
}

function ctrArgs(stack: IntegrityStack, args: readonly string[]): string[] {
  return ['--address', stack.containerd.address, '--namespace', NAMESPACE, ...args];
}

/** Imports the image (with `side`, or content only) and returns the seconds it took. */
async function importImage(stack: IntegrityStack, archive: string, side: Side | 'content'): Promise<number> {
  const how = side === 'content' ? ['--no-unpack'] : ['--snapshotter', side];
  await settleDisk(stack.snapshotter.root);
  return seconds(() => runCommand(CTR, ctrArgs(stack, ['images', 'import', ...how, '--base-name', REPOSITORY, archive]), { timeoutMs: 600_000 }));
}

/** Removes the image; containerd's garbage collection takes its content and snapshots with it. */
async function removeImage(stack: IntegrityStack): Promise<void> {
  await runCommand(CTR, ctrArgs(stack, ['images', 'rm', '--sync', IMAGE]));
}

/** `ctr run --rm`: seconds until the container's first output; fails unless it says "ready" and exits 0. */
async function startLatency(stack: IntegrityStack, side: Side, n: number): Promise<number> {
  const state = stack.containerd.state;
  const args = ctrArgs(stack, [
    'run', '--rm', '--snapshotter', side, '--runc-root', join(state, 'runc'), '--fifo-dir', join(state, 'fifo'),
    IMAGE, `bench-${side}-${n}`, '/bin/echo', 'ready',
  ]);
  const start = process.hrtime.bigint();
  const child = spawn(CTR, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let first: bigint | undefined;
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => {
    first ??= process.hrtime.bigint();
    stdout += chunk.toString();
  });
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0 || stdout.trim() !== 'ready' || first === undefined) {
    throw new Error(`ctr run with ${side} failed (exit ${code}): ${stderr.trim() || stdout.trim()}`);
  }
  return Number(first - start) / 1e9;
}

async function round(stack: IntegrityStack, archive: string, order: readonly Side[], runs: number): Promise<Round> {
  const result: Round = { import: { overlayfs: 0, integrity: 0, content: 0 }, start: { overlayfs: [], integrity: [] } };
  result.import.content = await importImage(stack, archive, 'content');
  await removeImage(stack);
  for (const side of order) {
    result.import[side] = await importImage(stack, archive, side);
    for (let n = 0; n < runs; n++) result.start[side].push(await startLatency(stack, side, n));
    await removeImage(stack);
  }
  return result;
}

/** Runs the import benchmark on `image` and prints every round and the ratios. */
export async function benchImport(image: RootfsImage, work: string, options: BenchOptions): Promise<void> {
  const archive = join(work, 'image.tar');
  tarLayout(image.layout, archive);
  // The daemon logs as in production (info): debug logging costs time per request.
  const stack = await startIntegrityStack({ snapshotterLogLevel: 'info' });
  try {
    console.log(`\n== ctr image import: one containerd, both snapshotters (containerd root ${stack.containerd.root}, snapshotter root ${stack.snapshotter.root}) ==`);
    const started = Date.now();
    await round(stack, archive, SIDES, 1);
    console.log(`warm-up round (not counted): ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const results: Round[] = [];
    for (let r = 1; r <= options.rounds; r++) {
      const result = await round(stack, archive, sidesInOrder(r), options.runs);
      results.push(result);
      console.log(`round ${r}: import ${SIDES.map((side) => `${side} ${s(result.import[side])}`).join(', ')}, content only ${s(result.import.content)}; ` +
        `start ${SIDES.map((side) => `${side} ${ms(median(result.start[side]))}`).join(', ')} (median of ${options.runs})`);
    }
    const importOf = (side: Side | 'content') => median(results.map((r) => r.import[side]));
    const unpack = (r: Round, side: Side) => r.import[side] - r.import.content;
    const startOf = (side: Side) => median(results.flatMap((r) => r.start[side]));
    console.log(`median import: ${SIDES.map((side) => `${side} ${s(importOf(side))}`).join(', ')}, content only ${s(importOf('content'))}; ` +
      `unpack alone (import - content only): ${SIDES.map((side) => `${side} ${s(median(results.map((r) => unpack(r, side))))}`).join(', ')}`);
    console.log(`ratios integrity/overlayfs, geometric means of the per-round ratios:`);
    console.log(`  import + unpack ${integrityOverOverlayfs(results, (r, side) => r.import[side])} (target <= 1.00×), unpack alone ${integrityOverOverlayfs(results, unpack)}`);
    console.log(`  start latency, ctr run (first output; medians ${SIDES.map((side) => `${side} ${ms(startOf(side))}`).join(', ')}): ` +
      `${integrityOverOverlayfs(results, (r, side) => median(r.start[side]))} (target <= 1.20×)`);
    const rss = peakRssMiB(stack.snapshotter.pid);
    if (rss !== undefined) console.log(`snapshotter daemon peak RSS: ${rss.toFixed(0)} MiB`);
  } finally {
    await stack.stop();
    rmSync(archive, { force: true });
  }
}
