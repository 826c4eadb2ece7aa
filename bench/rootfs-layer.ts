/**
 * A deterministic (seeded), Debian-like merged-/usr root filesystem layer as
 * tar+gzip, for benchmarks: per "package" executables, shared libraries with
 * their `.so.N` symlinks, docs, gzipped man pages and changelogs, sometimes
 * locales, Python modules with `__pycache__`, headers and dpkg lists; `bin`,
 * `sbin`, `lib` symlinks; a hard link every 40 packages. Sizes are log-normal
 * (most files a few KiB, a long tail); contents are slices of a text pool and
 * a machine-code-like binary pool, `.gz` files random. See bench/README.md.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, statSync } from 'node:fs';
import { createGzip } from 'node:zlib';
import { tarHeader } from '../test/support/tar-writer.js';
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

export interface LayerStats {
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  tarBytes: number;
  gzipBytes: number;
  /** `sha256:<hex>` of the tar (the OCI diff ID) and of the gzip file (the blob digest). */
  diffId: string;
  digest: string;
}

/**
 * Writes the layer as tar+gzip (level 6, as docker and `gzip` default to) to
 * `path`, about `bytes` of tar. Another `seed` gives other packages and contents.
 */
export async function writeLayer(path: string, bytes: number, seed = 0x5eed): Promise<LayerStats> {
  const random = new Random(seed);
  const pools = contentPools(random);
  const plan = planTree(bytes, random);
  const gzip = createGzip({ level: 6 });
  const out = createWriteStream(path);
  const tarHash = createHash('sha256');
  const gzipHash = createHash('sha256');
  gzip.on('data', (chunk: Buffer) => gzipHash.update(chunk));
  gzip.pipe(out);
  const stats: LayerStats = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, tarBytes: 0, gzipBytes: 0, diffId: '', digest: '' };
  const write = async (chunk: Uint8Array): Promise<void> => {
    stats.tarBytes += chunk.length;
    tarHash.update(chunk);
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
  stats.diffId = `sha256:${tarHash.digest('hex')}`;
  stats.digest = `sha256:${gzipHash.digest('hex')}`;
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
