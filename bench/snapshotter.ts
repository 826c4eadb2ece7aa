/**
 * The integrity snapshotter against containerd's own overlayfs snapshotter,
 * side by side under one containerd 1.6, on the same generated image: a
 * Debian-like root filesystem in several gzip layers (bench/rootfs-layer.ts)
 * with busybox on top, so containers can run. Measured per round, the sides
 * alternating which goes first:
 *
 *   - `ctr image import --snapshotter <side>`: content and unpack, from an
 *     empty content store every time (the image is removed with
 *     `ctr images rm --sync` after each side, which collects its content and
 *     snapshots); and `--no-unpack`, the content part alone, to tell the
 *     unpack apart;
 *   - `ctr run --rm --snapshotter <side> <image> /bin/echo`: the time from
 *     starting ctr to the container's first output, several runs per round.
 *
 * The result is the ratio of the medians, integrity / overlayfs (targets:
 * unpack no slower, start within 1.2×), and the daemon's peak RSS. See
 * bench/README.md.
 *
 *   node dist/bench/snapshotter.js [--size <MB>] [--layers <N>] [--rounds <N>] [--runs <N>] [--keep]
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { OciLayout } from '../snapshotter/oci/layout.js';
import { MediaType, serializeJson, type Descriptor } from '../snapshotter/oci/types.js';
import { runCommand } from '../test/support/command.js';
import { containerdSkipReason, CTR } from '../test/support/containerd.js';
import { startIntegrityStack, type IntegrityStack } from '../test/support/integrity-snapshotter.js';
import { busyboxFiles, makeTar, tarLayout } from '../test/support/oci-image.js';
import { median, mib } from './report.js';
import { writeLayer } from './rootfs-layer.js';

const NAMESPACE = 'bench';
const REPOSITORY = 'bench.test/rootfs';
const IMAGE = `${REPOSITORY}:v1`;
type Side = 'overlayfs' | 'integrity';
const SIDES: readonly Side[] = ['overlayfs', 'integrity'];

interface Round {
  /** Seconds of `ctr image import` per side, and of `--no-unpack`. */
  import: Record<Side | 'content', number>;
  /** Seconds to the first output of each `ctr run --rm`, per side. */
  start: Record<Side, number[]>;
}

// ------------------------------------------------------------ the image

/**
 * An OCI layout with `layers` generated layers of `totalMiB` together (the
 * first biggest, as a distribution's base layer is) and busybox on top.
 */
async function writeImage(dir: string, totalMiB: number, layers: number): Promise<{ archive: string; summary: string }> {
  const layout = await OciLayout.openOrCreate(join(dir, 'layout'));
  const weights = Array.from({ length: layers }, (_, i) => 0.6 ** i);
  const sum = weights.reduce((a, b) => a + b, 0);
  const descriptors: Descriptor[] = [];
  const diffIds: string[] = [];
  const parts: string[] = [];
  for (let i = 0; i < layers; i++) {
    const path = join(dir, `layer-${i}.tar.gz`);
    const stats = await writeLayer(path, (totalMiB * 2 ** 20 * weights[i]!) / sum, 0x5eed + i);
    const blob = readFileSync(path);
    descriptors.push(await layout.writeBlob(blob, MediaType.layerTarGzip));
    diffIds.push(stats.diffId);
    parts.push(`${stats.files} files, tar ${mib(stats.tarBytes)}, gzip ${mib(stats.gzipBytes)}`);
    rmSync(path);
  }
  const busybox = makeTar(busyboxFiles());
  descriptors.push(await layout.writeBlob(gzipSync(busybox), MediaType.layerTarGzip));
  diffIds.push(`sha256:${createHash('sha256').update(busybox).digest('hex')}`);
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin:/usr/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
  const configDescriptor = await layout.writeBlob(Buffer.from(JSON.stringify(config)), MediaType.imageConfig);
  const manifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: configDescriptor, layers: descriptors };
  await layout.addManifest(await layout.writeBlob(serializeJson(manifest), MediaType.imageManifest), 'v1');
  const archive = join(dir, 'image.tar');
  tarLayout(join(dir, 'layout'), archive);
  rmSync(join(dir, 'layout'), { recursive: true, force: true });
  return { archive, summary: `${parts.map((p, i) => `layer ${i + 1}: ${p}`).join('; ')}; busybox on top` };
}

// ------------------------------------------------------------ measuring

function ctrArgs(stack: IntegrityStack, args: readonly string[]): string[] {
  return ['--address', stack.containerd.address, '--namespace', NAMESPACE, ...args];
}

async function seconds(run: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Imports the image (with `side`, or content only) and returns the seconds it took. */
function importImage(stack: IntegrityStack, archive: string, side: Side | 'content'): Promise<number> {
  const how = side === 'content' ? ['--no-unpack'] : ['--snapshotter', side];
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

/** Peak resident memory of a process (VmHWM), in MiB. */
function peakRssMiB(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return hwm ? Number(hwm[1]) / 1024 : undefined;
}

const ratio = (ours: number, theirs: number): string => `${(ours / theirs).toFixed(2)}×`;
const s = (value: number): string => `${value.toFixed(2)} s`;
const ms = (value: number): string => `${(value * 1000).toFixed(0)} ms`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '150' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '3' },
      runs: { type: 'string', default: '5' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const [sizeMiB, layers, rounds, runs] = [Number(values.size), Number(values.layers), Number(values.rounds), Number(values.runs)];
  if (!(sizeMiB >= 1) || ![layers, rounds, runs].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new Error('--size takes MB (>= 1); --layers, --rounds and --runs whole numbers >= 1');
  }
  const skip = containerdSkipReason();
  if (skip) throw new Error(`cannot run containerd here: ${skip}`);

  const work = mkdtempSync('/var/tmp/bench-snapshotter-');
  let stack: IntegrityStack | undefined;
  try {
    let started = Date.now();
    const image = await writeImage(work, sizeMiB, layers);
    console.log(`image: ${image.summary}; written in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${mib(totalmem())} RAM, kernel ${release()}, node ${process.version}`);
    // The daemon logs as in production (info): debug logging costs time per request.
    stack = await startIntegrityStack({ snapshotterLogLevel: 'info' });
    console.log(`containerd root ${stack.containerd.root}, snapshotter root ${stack.snapshotter.root} (the same file system)`);

    started = Date.now();
    await round(stack, image.archive, SIDES, 1);
    console.log(`warm-up round (not counted): ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const results: Round[] = [];
    for (let r = 1; r <= rounds; r++) {
      // Alternate who goes first, so neither side always inherits the other's cache and writeback state.
      const result = await round(stack, image.archive, r % 2 ? SIDES : [...SIDES].reverse(), runs);
      results.push(result);
      console.log(`round ${r}: import ${SIDES.map((side) => `${side} ${s(result.import[side])}`).join(', ')}, content only ${s(result.import.content)}; ` +
        `start ${SIDES.map((side) => `${side} ${ms(median(result.start[side]))}`).join(', ')} (median of ${runs})`);
    }
    const importOf = (side: Side | 'content') => median(results.map((r) => r.import[side]));
    const unpackOf = (side: Side) => median(results.map((r) => r.import[side] - r.import.content));
    const startOf = (side: Side) => median(results.flatMap((r) => r.start[side]));
    console.log(`median import: ${SIDES.map((side) => `${side} ${s(importOf(side))}`).join(', ')}, content only ${s(importOf('content'))}`);
    console.log(`import + unpack: integrity/overlayfs = ${ratio(importOf('integrity'), importOf('overlayfs'))} (target <= 1.00×)`);
    console.log(`unpack alone (import - content only): integrity ${s(unpackOf('integrity'))}, overlayfs ${s(unpackOf('overlayfs'))}, ` +
      `integrity/overlayfs = ${ratio(unpackOf('integrity'), unpackOf('overlayfs'))}`);
    console.log(`start latency (first output): integrity ${ms(startOf('integrity'))}, overlayfs ${ms(startOf('overlayfs'))}, ` +
      `integrity/overlayfs = ${ratio(startOf('integrity'), startOf('overlayfs'))} (target <= 1.20×)`);
    const rss = peakRssMiB(stack.snapshotter.pid);
    if (rss !== undefined) console.log(`snapshotter daemon peak RSS: ${rss.toFixed(0)} MiB`);
  } finally {
    await stack?.stop();
    if (values.keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench/snapshotter: ${(err as Error).message}`);
  process.exitCode = 1;
});
