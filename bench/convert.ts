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
import { once } from 'node:events';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { createGzip } from 'node:zlib';
import { verityParams } from '../snapshotter/layer/verity/params.js';
import { DELIVERY_KIT_BUILD_TIME } from '../snapshotter/layer/erofs/writer.js';
import { tarHeader } from '../test/support/tar-writer.js';

/** The CLI of the same build; --cli points at another (e.g. to compare two builds). */
let cli = fileURLToPath(new URL('../snapshotter/cli/main.js', import.meta.url));
const TOOLS = { time: '/usr/bin/time', tar: '/bin/tar', mkfs: '/usr/bin/mkfs.erofs', veritysetup: '/usr/sbin/veritysetup' };
/** mkfs.erofs 1.5 has no `-Uclear`; the all-zero UUID is what it means. */
const CLEAR_UUID = '00000000-0000-0000-0000-000000000000';

// ------------------------------------------------------------ the layer

/** mulberry32: small, fast and the same on every machine. */
class Random {
  constructor(private state: number) {}

  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }

  /** Log-normal around `median`: most files small, a long tail of big ones. */
  size(median: number, spread: number, max: number): number {
    const z = Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
    return Math.min(max, Math.round(median * Math.exp(spread * z)));
  }
}

const POOL_BYTES = 8 << 20;

/**
 * File contents are slices of two pools: text (words, lines; gzip leaves
 * about a third) and binary (machine-code-like mix of random bytes, small
 * integers and zero runs; gzip leaves about a half). Slices start at random
 * offsets, so files do not repeat within gzip's 32 KiB window.
 */
function contentPools(random: Random): { text: Buffer; binary: Buffer } {
  const words = Array.from({ length: 3000 }, () => {
    const length = 2 + random.int(9);
    return Array.from({ length }, () => String.fromCharCode(97 + random.int(26))).join('');
  });
  const lines: string[] = [];
  let textLength = 0;
  while (textLength < POOL_BYTES) {
    const line = `${'  '.repeat(random.int(3))}${Array.from({ length: 3 + random.int(10) }, () => random.pick(words)).join(' ')}${random.chance(0.2) ? ':' : ''}\n`;
    lines.push(line);
    textLength += line.length;
  }
  const text = Buffer.from(lines.join('')).subarray(0, POOL_BYTES);
  const binary = Buffer.alloc(POOL_BYTES);
  for (let at = 0; at < POOL_BYTES; ) {
    const run = Math.min(POOL_BYTES - at, 16 + random.int(512));
    const kind = random.int(10);
    for (let i = 0; i < run; i++) {
      binary[at + i] = kind < 2 ? random.int(256) : kind < 8 ? (random.chance(0.8) ? random.int(4) : 0x48 + random.int(4)) : 0;
    }
    at += run;
  }
  return { text, binary };
}

type Kind = 'text' | 'binary' | 'packed';

interface FileSpec {
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink';
  mode: number;
  size: number;
  kind: Kind;
  seed: number;
  target?: string;
}

/** A Debian-like merged-/usr tree, package by package, until the tar reaches `bytes`. */
function planTree(bytes: number, random: Random): FileSpec[] {
  const files = new Map<string, FileSpec>();
  let total = 0;
  let seed = 1;
  const file = (path: string, size: number, kind: Kind, mode = 0o644): void => {
    if (path.length > 99 || files.has(path)) return;
    files.set(path, { path, type: 'file', mode, size, kind, seed: seed++ });
    total += 512 + Math.ceil(size / 512) * 512;
  };
  const link = (path: string, type: 'symlink' | 'hardlink', target: string): void => {
    if (path.length > 99 || files.has(path)) return;
    files.set(path, { path, type, mode: 0o777, size: 0, kind: 'text', seed: 0, target });
    total += 512;
  };
  link('bin', 'symlink', 'usr/bin');
  link('sbin', 'symlink', 'usr/sbin');
  link('lib', 'symlink', 'usr/lib');
  link('lib64', 'symlink', 'usr/lib64');
  for (let i = 0; i < 150; i++) file(`etc/${random.chance(0.3) ? `conf-${i % 20}.d/` : ''}config-${i}.conf`, random.size(900, 1.2, 60_000), 'text');
  const languages = ['de', 'fr', 'es', 'it', 'ja', 'ru', 'pt_BR', 'zh_CN', 'pl', 'nl', 'sv', 'cs', 'uk', 'ko', 'tr'];
  for (let p = 0; total < bytes; p++) {
    const name = `pkg${p}-${'abcdefghij'[p % 10]}${random.int(1000)}`;
    const installed: string[] = [];
    const put = (path: string, size: number, kind: Kind, mode?: number): void => {
      file(path, size, kind, mode);
      installed.push(path);
    };
    for (let i = random.int(4); i > 0; i--) {
      const big = random.chance(0.006);
      put(`usr/bin/${name}${i > 1 ? `-${i}` : ''}`, big ? 2_000_000 + random.int(15_000_000) : random.size(25_000, 1.1, 3_000_000), 'binary', 0o755);
    }
    if (random.chance(0.15)) put(`usr/sbin/${name}d`, random.size(80_000, 1.2, 4_000_000), 'binary', 0o755);
    for (let i = random.int(3); i > 0; i--) {
      const so = `lib${name}${i}.so`;
      const version = `${i}.2.${random.int(9)}`;
      const big = random.chance(0.008);
      put(`usr/lib/x86_64-linux-gnu/${so}.${version}`, big ? 3_000_000 + random.int(20_000_000) : random.size(60_000, 1.2, 6_000_000), 'binary');
      link(`usr/lib/x86_64-linux-gnu/${so}.${i}`, 'symlink', `${so}.${version}`);
    }
    put(`usr/share/doc/${name}/copyright`, random.size(2500, 0.9, 40_000), 'text');
    put(`usr/share/doc/${name}/changelog.Debian.gz`, random.size(1500, 1, 60_000), 'packed');
    for (let i = random.int(3); i > 0; i--) put(`usr/share/man/man${1 + random.int(8)}/${name}-${i}.${1 + random.int(8)}.gz`, random.size(2000, 0.8, 40_000), 'packed');
    if (random.chance(0.35)) {
      for (const language of languages.slice(0, 3 + random.int(languages.length - 3))) {
        put(`usr/share/locale/${language}/LC_MESSAGES/${name}.mo`, random.size(12_000, 1, 200_000), 'binary');
      }
    }
    if (random.chance(0.4)) {
      const base = `usr/lib/python3/dist-packages/${name}`;
      for (let i = 4 + random.int(30); i > 0; i--) {
        const module = `${random.chance(0.3) ? `sub${i % 4}/` : ''}mod_${i}`;
        put(`${base}/${module}.py`, random.size(5000, 1.1, 150_000), 'text');
        if (random.chance(0.5)) put(`${base}/__pycache__/${module.replace('/', '_')}.cpython-311.pyc`, random.size(4000, 1, 120_000), 'binary');
      }
    }
    if (random.chance(0.1)) for (let i = 3 + random.int(25); i > 0; i--) put(`usr/include/${name}/h${i}.h`, random.size(3000, 1.2, 200_000), 'text');
    if (random.chance(0.02)) put(`usr/share/${name}/data/empty-${p}`, 0, 'text');
    file(`var/lib/dpkg/info/${name}.list`, installed.reduce((sum, path) => sum + path.length + 2, 0), 'text');
    file(`var/lib/dpkg/info/${name}.md5sums`, installed.length * 50, 'text');
    if (p % 40 === 7 && installed[0]?.startsWith('usr/bin/')) link(`usr/bin/${name}-alias`, 'hardlink', installed[0]);
  }
  const directories = new Set<string>();
  for (const path of files.keys()) {
    for (let slash = path.indexOf('/'); slash > 0; slash = path.indexOf('/', slash + 1)) directories.add(path.slice(0, slash));
  }
  for (const dir of directories) if (!files.has(dir)) files.set(dir, { path: dir, type: 'directory', mode: 0o755, size: 0, kind: 'text', seed: 0 });
  // Sorted, parents first: the order of a tar of a real root file system (as Go's archive walk writes it).
  return [...files.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

interface LayerStats {
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  tarBytes: number;
  gzipBytes: number;
}

/** Writes the layer as tar+gzip (level 6, as docker and `gzip` default to) to `path`. */
async function writeLayer(path: string, bytes: number): Promise<LayerStats> {
  const random = new Random(0x5eed);
  const pools = contentPools(random);
  const plan = planTree(bytes, random);
  const gzip = createGzip({ level: 6 });
  const out = createWriteStream(path);
  gzip.pipe(out);
  const stats: LayerStats = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, tarBytes: 0, gzipBytes: 0 };
  const write = async (chunk: Uint8Array): Promise<void> => {
    stats.tarBytes += chunk.length;
    if (!gzip.write(chunk)) await once(gzip, 'drain');
  };
  const typeflag = { file: '0', hardlink: '1', symlink: '2', directory: '5' } as const;
  for (const spec of plan) {
    await write(tarHeader({
      name: spec.path, typeflag: typeflag[spec.type], mode: spec.mode, size: spec.size, mtime: 1_700_000_000 + (spec.seed % 86_400),
      linkname: spec.target ?? '', uname: 'root', gname: 'root',
    }));
    stats[spec.type === 'file' ? 'files' : spec.type === 'directory' ? 'directories' : spec.type === 'symlink' ? 'symlinks' : 'hardlinks']++;
    if (spec.type !== 'file') continue;
    const contents = new Random(spec.seed);
    for (let done = 0; done < spec.size; ) {
      const n = Math.min(spec.size - done, 1 << 20);
      // 'packed' files (.gz) do not compress again: fresh random bytes.
      const piece = spec.kind === 'packed'
        ? Buffer.from(Uint8Array.from({ length: n }, () => contents.int(256)))
        : slice(spec.kind === 'text' ? pools.text : pools.binary, contents.int(POOL_BYTES), n);
      await write(piece);
      done += n;
    }
    if (spec.size % 512) await write(new Uint8Array(512 - (spec.size % 512)));
  }
  await write(new Uint8Array(1024));
  gzip.end();
  await once(out, 'close');
  stats.gzipBytes = statSync(path).size;
  return stats;
}

function slice(pool: Buffer, from: number, length: number): Buffer {
  if (from + length <= pool.length) return pool.subarray(from, from + length);
  const parts: Buffer[] = [];
  for (let at = from, left = length; left > 0; at = 0) {
    const n = Math.min(left, pool.length - at);
    parts.push(pool.subarray(at, at + n));
    left -= n;
  }
  return Buffer.concat(parts);
}

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

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

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
