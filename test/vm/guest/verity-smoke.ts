/**
 * Guest program: the harness's own proof that the VM has what the product
 * needs, using only the distro tools (mkfs.erofs, veritysetup, mount). Builds
 * an EROFS image, protects it with dm-verity, mounts it, reads a file, flips
 * one byte of that file's data in the image and reads again.
 *
 * It records what it saw in $VM_RESULTS_DIR/verity-smoke.json and leaves the
 * judging to the host test, so a wrong observation shows up as a precise
 * assertion failure there. Exits non-zero only if a step could not run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dropCaches, errnoOf, flipByte, readHead } from '../support/guest-io.js';

const DEVICE = 'vm-verity-smoke';
/** The project's pinned dm-verity parameters (docs/dm-verity.md); no superblock, so open needs them too. */
const VERITY_PARAMS = [
  '--no-superblock',
  '--format=1',
  '--hash=sha256',
  '--data-block-size=4096',
  '--hash-block-size=4096',
  '--salt=dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b',
];
const FILE = 'data.txt';
/** A line from the middle of the file: its block is the one we corrupt. */
const TARGET_LINE = 'verity-smoke line 00500\n';

export interface VeritySmokeReport {
  rootHash: string;
  /** `veritysetup status` before and after the corruption. */
  statusBefore: string;
  statusAfter: string;
  /** The file read back intact through dm-verity, before the corruption. */
  readBeforeMatches: boolean;
  /** Offset in the image of the byte flipped. */
  flippedOffset: number;
  /** errno code of reading the whole file after the flip, or "none". */
  readAfterError: string;
  /** The file's first block, which the flip did not touch, still reads. */
  firstBlockAfterMatches: boolean;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function statusLine(): string {
  const out = run('veritysetup', ['status', DEVICE]);
  return /^\s*status:\s*(.+)$/m.exec(out)?.[1]?.trim() ?? `unparsed: ${out}`;
}

async function main(): Promise<void> {
  const resultsDir = process.env.VM_RESULTS_DIR;
  if (!resultsDir) throw new Error('VM_RESULTS_DIR is not set: run this through runInVm');
  const work = mkdtempSync('/tmp/verity-smoke-');
  const source = join(work, 'source');
  const mountpoint = join(work, 'mnt');
  const image = join(work, 'layer.erofs');
  const hashTree = join(work, 'layer.verity');
  mkdirSync(source);
  mkdirSync(mountpoint);
  // 1000 lines of 24 bytes: 24000 bytes, six 4 KiB blocks, none of them inlined.
  const content = Array.from({ length: 1000 }, (_, i) => `verity-smoke line ${String(i).padStart(5, '0')}\n`).join('');
  writeFileSync(join(source, FILE), content);

  let opened = false;
  let mounted = false;
  try {
    run('mkfs.erofs', [image, source]);
    const format = run('veritysetup', ['format', ...VERITY_PARAMS, image, hashTree]);
    const rootHash = /^Root hash:\s*([0-9a-f]{64})$/m.exec(format)?.[1];
    if (!rootHash) throw new Error(`no root hash in veritysetup output:\n${format}`);

    run('veritysetup', ['open', ...VERITY_PARAMS, image, DEVICE, hashTree, rootHash]);
    opened = true;
    run('mount', ['-t', 'erofs', '-o', 'ro', `/dev/mapper/${DEVICE}`, mountpoint]);
    mounted = true;
    const mountedFile = join(mountpoint, FILE);
    const readBeforeMatches = readFileSync(mountedFile, 'utf8') === content;
    const statusBefore = statusLine();

    const imageBytes = readFileSync(image);
    const flippedOffset = imageBytes.indexOf(TARGET_LINE);
    if (flippedOffset < 0 || imageBytes.indexOf(TARGET_LINE, flippedOffset + 1) >= 0) {
      throw new Error(`the line to corrupt is not exactly once in ${image}`);
    }
    flipByte(image, flippedOffset);
    dropCaches();

    const readAfterError = await errnoOf(() => readFileSync(mountedFile));
    const firstBlockAfterMatches = readHead(mountedFile, 4096).toString('utf8') === content.slice(0, 4096);
    const report: VeritySmokeReport = {
      rootHash,
      statusBefore,
      statusAfter: statusLine(),
      readBeforeMatches,
      flippedOffset,
      readAfterError,
      firstBlockAfterMatches,
    };
    writeFileSync(join(resultsDir, 'verity-smoke.json'), JSON.stringify(report, null, 2));
    console.log(JSON.stringify(report));
  } finally {
    if (mounted) run('umount', [mountpoint]);
    if (opened) run('veritysetup', ['close', DEVICE]);
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
