/**
 * `integrityctl layer convert` against what a user scripts today for the same
 * job: extract the layer, build an EROFS image of the directory, hash it with
 * veritysetup. Both sides get the same deterministic, rootfs-like gzip layer
 * and run as fresh processes, alternating, for N rounds after one warm-up
 * round; the result is the ratio of the medians and each side's peak RSS
 * (GNU time's "Maximum resident set size"). See bench/README.md.
 *
 *   node dist/bench/convert.js [--size <MB>] [--rounds <N>] [--dir <path>] [--ours-only] [--cli <main.js>] [--keep]
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { verityParams } from '../snapshotter/layer/verity/params.js';
import { DELIVERY_KIT_BUILD_TIME } from '../snapshotter/layer/erofs/writer.js';
import { median, mib } from './report.js';
import { writeLayer } from './rootfs-layer.js';

/** The CLI of the same build; --cli points at another (e.g. to compare two builds). */
let cli = fileURLToPath(new URL('../snapshotter/cli/main.js', import.meta.url));
const TOOLS = { time: '/usr/bin/time', tar: '/bin/tar', mkfs: '/usr/bin/mkfs.erofs', veritysetup: '/usr/sbin/veritysetup' };
/** mkfs.erofs 1.5 has no `-Uclear`; the all-zero UUID is what it means. */
const CLEAR_UUID = '00000000-0000-0000-0000-000000000000';

// ------------------------------------------------------------ measuring

interface Measured {
  seconds: number;
  /** Peak RSS in KiB (GNU time). */
  maxRssKiB: number;
}

/** Runs a program under GNU time (argument arrays, no shell); fails with its output when it fails. */
async function timed(file: string, args: readonly string[], report: string): Promise<Measured> {
  const start = process.hrtime.bigint();
  try {
    await promisify(execFile)(TOOLS.time, ['-v', '-o', report, file, ...args], { maxBuffer: 64 << 20 });
  } catch (err) {
    const failure = err as { stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed: ${failure.stderr?.trim() || failure.message}`);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(readFileSync(report, 'utf8'));
  if (!rss) throw new Error(`no "Maximum resident set size" in ${report}`);
  return { seconds, maxRssKiB: Number(rss[1]) };
}

interface Round {
  seconds: number;
  maxRssKiB: number;
  steps: Record<string, number>;
  imageBytes: number;
}

async function baselineRound(layer: string, work: string): Promise<Round> {
  const rootfs = join(work, 'rootfs');
  const image = join(work, 'baseline.erofs');
  mkdirSync(rootfs);
  try {
    const report = join(work, 'time.txt');
    const tar = await timed(TOOLS.tar, ['-xzf', layer, '-C', rootfs, '--numeric-owner', '--same-permissions'], report);
    const mkfs = await timed(TOOLS.mkfs, ['--quiet', `-U${CLEAR_UUID}`, `-T${DELIVERY_KIT_BUILD_TIME}`, '-x-1', image, rootfs], report);
    const verity = await timed(TOOLS.veritysetup, [
      'format', `--data-block-size=${verityParams.dataBlockBytes}`, `--hash-block-size=${verityParams.hashBlockBytes}`,
      `--salt=${verityParams.saltHex}`, '--no-superblock', image, join(work, 'baseline.verity'),
    ], report);
    return {
      seconds: tar.seconds + mkfs.seconds + verity.seconds,
      maxRssKiB: Math.max(tar.maxRssKiB, mkfs.maxRssKiB, verity.maxRssKiB),
      steps: { 'tar -xzf': tar.seconds, 'mkfs.erofs': mkfs.seconds, veritysetup: verity.seconds },
      imageBytes: statSync(image).size,
    };
  } finally {
    // Not timed: a script would have to remove the extracted tree too, so this favours the baseline.
    rmSync(rootfs, { recursive: true, force: true });
    rmSync(image, { force: true });
    rmSync(join(work, 'baseline.verity'), { force: true });
  }
}

async function oursRound(layer: string, work: string): Promise<Round> {
  const image = join(work, 'ours.erofs');
  try {
    const run = await timed(process.execPath, [cli, 'layer', 'convert', layer, '-o', image, '--hash-file', join(work, 'ours.verity')], join(work, 'time.txt'));
    return { ...run, steps: {}, imageBytes: statSync(image).size };
  } finally {
    rmSync(image, { force: true });
    rmSync(join(work, 'ours.verity'), { force: true });
  }
}

type Side = 'baseline' | 'ours';
const RUN: Record<Side, (layer: string, work: string) => Promise<Round>> = { baseline: baselineRound, ours: oursRound };

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      size: { type: 'string', default: '200' },
      rounds: { type: 'string', default: '3' },
      dir: { type: 'string', default: '/dev/shm' },
      'ours-only': { type: 'boolean', default: false },
      cli: { type: 'string' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const sizeMiB = Number(values.size);
  const rounds = Number(values.rounds);
  if (!(sizeMiB >= 1) || !Number.isInteger(rounds) || rounds < 1) throw new Error('--size takes MB (>= 1), --rounds a whole number >= 1');
  if (process.getuid?.() !== 0) throw new Error('run as root: the baseline extracts with the tar\'s owners (tar --same-owner), as a real script would');
  for (const [name, path] of Object.entries(TOOLS)) statSync(path, { throwIfNoEntry: false }) ?? fail(`${path} is missing (${name}; see scripts/setup.sh)`);
  const sides: Side[] = values['ours-only'] ? ['ours'] : ['baseline', 'ours'];
  if (values.cli !== undefined) cli = values.cli;

  const work = mkdtempSync(join(values.dir, 'bench-convert-'));
  try {
    const layer = join(work, 'layer.tar.gz');
    let started = Date.now();
    const stats = await writeLayer(layer, sizeMiB * 2 ** 20);
    console.log(`layer: ${stats.files} files, ${stats.directories} directories, ${stats.symlinks} symlinks, ${stats.hardlinks} hard links; ` +
      `tar ${mib(stats.tarBytes)}, gzip ${mib(stats.gzipBytes)} (${((100 * stats.gzipBytes) / stats.tarBytes).toFixed(0)}%), ` +
      `written in ${((Date.now() - started) / 1000).toFixed(1)} s to ${work}`);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${mib(totalmem())} RAM, node ${process.version}`);

    started = Date.now();
    for (const side of sides) await RUN[side](layer, work);
    console.log(`warm-up round (not counted; the layer is now in the page cache): ${((Date.now() - started) / 1000).toFixed(1)} s`);

    const results: Record<Side, Round[]> = { baseline: [], ours: [] };
    for (let round = 1; round <= rounds; round++) {
      // Alternate who goes first, so neither side always inherits the other's cache and writeback state.
      for (const side of round % 2 ? sides : [...sides].reverse()) results[side].push(await RUN[side](layer, work));
      console.log(`round ${round}: ${sides.map((side) => {
        const r = results[side].at(-1)!;
        const steps = Object.entries(r.steps).map(([step, s]) => `${step} ${s.toFixed(2)}`).join(' + ');
        return `${side} ${r.seconds.toFixed(2)} s${steps ? ` (${steps})` : ''}`;
      }).join(', ')}`);
    }
    const medianOf = (side: Side): number => median(results[side].map((r) => r.seconds));
    const peakOf = (side: Side): number => Math.max(...results[side].map((r) => r.maxRssKiB)) / 1024;
    console.log(`median: ${sides.map((side) => `${side} ${medianOf(side).toFixed(2)} s`).join(', ')}`);
    console.log(`peak RSS: ${sides.map((side) => `${side} ${peakOf(side).toFixed(0)} MiB${side === 'baseline' ? ' (largest of tar, mkfs.erofs, veritysetup)' : ''}`).join(', ')}`);
    console.log(`image: ${sides.map((side) => `${side} ${mib(results[side][0]!.imageBytes)}`).join(', ')}`);
    if (sides.length === 2) {
      const ratio = medianOf('baseline') / medianOf('ours');
      console.log(ratio >= 1 ? `ours is ${ratio.toFixed(1)}× faster` : `ours is ${(1 / ratio).toFixed(1)}× slower`);
    }
  } finally {
    if (values.keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

function fail(message: string): never {
  throw new Error(message);
}

main().catch((err: unknown) => {
  console.error(`bench/convert: ${(err as Error).message}`);
  process.exitCode = 1;
});
