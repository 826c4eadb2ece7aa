/**
 * Guest program: `integrityctl layer mount` / `layer umount` / `status` on a
 * layer converted by our own pipeline (`integrityctl layer convert`), as a
 * person testing a kernel would run them, in the VM (the host has no
 * device-mapper).
 *
 *   node layer-mount.js <report.json>
 *
 * The commands run in this process (test/support/cli-in-process.ts): loading
 * the CLI once instead of per call saves ~10 s each under TCG.
 *
 * Converts a layer tar, mounts it through dm-verity and reads it; flips one
 * byte of a file's data in the image, drops the caches and reads again; asks
 * `integrityctl status` before and after; unmounts. Then a wrong root hash, a
 * one-block image and a hash file of the wrong size. Records what it saw and
 * leaves the judging to test/vm/layer-mount.test.ts. Exits non-zero only when
 * a step could not run. Import only its types: loading it runs it.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, type CliResult } from '../../support/cli-in-process.js';
import { makeTar } from '../../support/oci-image.js';
import { dropCaches, flipByte } from '../support/guest-io.js';

const HELLO = 'hello through integrityctl layer mount\n';
// 2000 lines of 32 bytes: 16 blocks of file data; the target line sits in a middle block.
const DATA = Array.from({ length: 2000 }, (_, i) => `layer-mount test line ${String(i).padStart(8, '0')}\n`).join('');
const TARGET_LINE = 'layer-mount test line 00001000\n';

export interface LayerMountReport {
  rootHash: string;
  mount: CliResult;
  mounted: { device: string; node: string } | undefined;
  helloMatches: boolean;
  dataMatches: boolean;
  statusBefore: CliResult;
  flippedOffset: number;
  dataReadAfterFlip: string;
  helloAfterFlipMatches: boolean;
  statusAfter: CliResult;
  umount: CliResult;
  /** Our devices (integrity-*) and the loop devices bound to the test's files after the umount. */
  devicesAfterUmount: string[];
  loopsAfterUmount: string[];
  wrongRoot: { run: CliResult; devices: string[]; loops: string[] };
  oneBlock: { rootHash: string; hashFileBytes: number; mount: CliResult; read: string; umount: CliResult };
  shortHashFile: { run: CliResult; devices: string[]; loops: string[] };
}

function readOrErrno(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    return `errno:${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

/** Names of device-mapper devices that are ours (integrity-*), from sysfs. */
function ourDevices(): string[] {
  return readdirSync('/sys/block')
    .filter((d) => d.startsWith('dm-'))
    .map((d) => readFileSync(`/sys/block/${d}/dm/name`, 'utf8').trim())
    .filter((name) => name.startsWith('integrity-'));
}

/** Loop devices bound to a file under `dir`. */
function loopsOver(dir: string): string[] {
  return readdirSync('/sys/block')
    .filter((d) => d.startsWith('loop'))
    .flatMap((d) => {
      try {
        const file = readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
        return file.startsWith(dir) ? [`${d}:${file}`] : [];
      } catch {
        return [];
      }
    });
}

async function convert(dir: string, name: string, files: Parameters<typeof makeTar>[0]): Promise<{ image: string; hashFile: string; rootHash: string }> {
  const tar = join(dir, `${name}.tar`);
  writeFileSync(tar, makeTar(files));
  const image = join(dir, `${name}.erofs`);
  const hashFile = join(dir, `${name}.verity`);
  const run = await runCli(['layer', 'convert', tar, '-o', image, '--hash-file', hashFile, '--json']);
  if (run.status !== 0) throw new Error(`layer convert failed: ${run.stderr}`);
  return { image, hashFile, rootHash: (JSON.parse(run.stdout) as { rootHash: string }).rootHash };
}

const reportFile = process.argv[2];
if (!reportFile) throw new Error('usage: layer-mount.js <report.json>');

const dir = mkdtempSync('/tmp/layer-mount-');
// An empty snapshotter root: status then reports only the devices of `layer mount`.
const statusArgs = ['status', '--root', join(dir, 'no-snapshotter'), '--json'];
const layer = await convert(dir, 'layer', [
  { path: 'etc/' },
  { path: 'etc/hello', data: HELLO },
  { path: 'data/' },
  { path: 'data/lines', data: DATA },
]);
const mnt = join(dir, 'mnt');
mkdirSync(mnt);

const mount = await runCli(['layer', 'mount', layer.image, mnt, '--hash-file', layer.hashFile, '--root-hash', layer.rootHash, '--json']);
const mounted = mount.status === 0 ? (JSON.parse(mount.stdout) as { device: string; node: string }) : undefined;
const helloMatches = readOrErrno(join(mnt, 'etc/hello')) === HELLO;
const dataMatches = readOrErrno(join(mnt, 'data/lines')) === DATA;
const statusBefore = await runCli(statusArgs);

const flippedOffset = readFileSync(layer.image).indexOf(TARGET_LINE);
if (flippedOffset < 0) throw new Error('the target line is not in the image');
flipByte(layer.image, flippedOffset);
dropCaches();
const dataReadAfterFlip = readOrErrno(join(mnt, 'data/lines')).slice(0, 40);
const helloAfterFlipMatches = readOrErrno(join(mnt, 'etc/hello')) === HELLO;
const statusAfter = await runCli(statusArgs);
const umount = await runCli(['layer', 'umount', mnt, '--json']);
const devicesAfterUmount = ourDevices();
const loopsAfterUmount = loopsOver(dir);

// A wrong root hash: an intact copy of the layer, one hex digit of the root changed.
const intact = await convert(dir, 'intact', [{ path: 'etc/' }, { path: 'etc/hello', data: HELLO }]);
const wrongHash = `${intact.rootHash.slice(0, -1)}${intact.rootHash.endsWith('0') ? '1' : '0'}`;
const wrongRun = await runCli(['layer', 'mount', intact.image, mnt, '--hash-file', intact.hashFile, '--root-hash', wrongHash]);
const wrongRoot = { run: wrongRun, devices: ourDevices(), loops: loopsOver(dir) };

// One data block (a layer that only makes a directory): no hash levels, an empty
// hash file, the root hash is the block's own digest.
const tiny = await convert(dir, 'tiny', [{ path: 'workdir/' }]);
const tinyMount = await runCli(['layer', 'mount', tiny.image, mnt, '--hash-file', tiny.hashFile, '--root-hash', tiny.rootHash]);
const tinyRead = readdirSync(mnt).join(',');
const tinyUmount = tinyMount.status === 0 ? await runCli(['layer', 'umount', mnt]) : { status: -1, stdout: '', stderr: 'not mounted' };

// A hash file that is not this image's (cut short): refused before any device exists.
const short = join(dir, 'short.verity');
writeFileSync(short, readFileSync(layer.hashFile).subarray(0, 100));
const shortRun = await runCli(['layer', 'mount', intact.image, mnt, '--hash-file', short, '--root-hash', intact.rootHash]);

const report: LayerMountReport = {
  rootHash: layer.rootHash,
  mount,
  mounted,
  helloMatches,
  dataMatches,
  statusBefore,
  flippedOffset,
  dataReadAfterFlip,
  helloAfterFlipMatches,
  statusAfter,
  umount,
  devicesAfterUmount,
  loopsAfterUmount,
  wrongRoot,
  oneBlock: { rootHash: tiny.rootHash, hashFileBytes: readFileSync(tiny.hashFile).length, mount: tinyMount, read: tinyRead, umount: tinyUmount },
  shortHashFile: { run: shortRun, devices: ourDevices(), loops: loopsOver(dir) },
};
writeFileSync(reportFile, `${JSON.stringify(report, null, 2)}\n`);
