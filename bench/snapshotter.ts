/**
 * The integrity snapshotter against containerd's own overlayfs snapshotter,
 * under containerd 1.6, on the same generated image: a Debian-like root
 * filesystem in several gzip layers (rootfs-image.ts) with busybox on top,
 * so containers run. Two paths, each side by side, the sides alternating
 * which goes first, an even number of rounds after one warm-up round:
 *
 *   - `cri` (snapshotter-cri.ts): CRI PullImage from a local registry, what
 *     Kubernetes nodes do; its Prepares carry the labels of the fast path;
 *   - `import` (snapshotter-import.ts): `ctr image import`, which sends no
 *     labels: containerd unpacks every layer, the snapshotter converts its blob.
 *
 * Each prints its rounds, the medians and the ratios integrity / overlayfs
 * as geometric means of the per-round ratios (targets: unpack no slower,
 * start within 1.2×), and the daemon's peak RSS.
 * See bench/README.md.
 *
 *   node dist/bench/snapshotter.js [--path cri|import|both] [--size <MB>] [--layers <N>] [--rounds <N>] [--runs <N>] [--keep]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { parseArgs } from 'node:util';
import { containerdSkipReason } from '../test/support/containerd.js';
import { registrySkipReason } from '../test/support/registry.js';
import { mib } from './report.js';
import { writeRootfsImage } from './rootfs-image.js';
import { benchCriPull } from './snapshotter-cri.js';
import { benchImport } from './snapshotter-import.js';

const PATHS = ['cri', 'import', 'both'] as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      path: { type: 'string', default: 'both' },
      size: { type: 'string', default: '150' },
      layers: { type: 'string', default: '5' },
      rounds: { type: 'string', default: '4' },
      runs: { type: 'string', default: '5' },
      keep: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const [sizeMiB, layers, rounds, runs] = [Number(values.size), Number(values.layers), Number(values.rounds), Number(values.runs)];
  if (!(sizeMiB >= 1) || ![layers, rounds, runs].every((n) => Number.isInteger(n) && n >= 1)) {
    throw new Error('--size takes MB (>= 1); --layers, --rounds and --runs whole numbers >= 1');
  }
  // The side timed second pays for the first one's deletions (bench/README.md): each side goes first as often.
  if (rounds % 2) throw new Error('--rounds takes an even number: the sides alternate which goes first');
  const path = values.path as (typeof PATHS)[number];
  if (!PATHS.includes(path)) throw new Error(`--path takes ${PATHS.join(', ')}`);
  const skip = containerdSkipReason() ?? (path === 'import' ? undefined : registrySkipReason());
  if (skip) throw new Error(`cannot run here: ${skip}`);

  const work = mkdtempSync('/var/tmp/bench-snapshotter-');
  try {
    const started = Date.now();
    const image = await writeRootfsImage(work, sizeMiB, layers);
    console.log(`image: ${image.summary}; written in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${mib(totalmem())} RAM, kernel ${release()}, node ${process.version}, ` +
      `load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    if (path !== 'import') await benchCriPull(image, { rounds, runs });
    if (path !== 'cri') await benchImport(image, work, { rounds, runs });
    console.log(`load at the end: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  } finally {
    if (values.keep) console.log(`kept ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench/snapshotter: ${(err as Error).message}`);
  process.exitCode = 1;
});
