/**
 * `ctr image import` into the integrity snapshotter under a real containerd
 * 1.6: the unpack arrives without labels, takes the writable path, and every
 * layer is committed from its blob — byte for byte what `integrityctl layer
 * convert` makes of the blob — so containers see exactly the image's merged
 * tree (whiteouts, opaque directories, a directory replaced by a file, links,
 * xattrs), never what containerd's differ wrote into the upper dir.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseMountInfo } from '../../../snapshotter/service/mounts/mountinfo.js';
import { runCommand } from '../../support/command.js';
import { containerdSkipReason } from '../../support/containerd.js';
import { startIntegrityStack, type IntegrityStack } from '../../support/integrity-snapshotter.js';
import { assertMergedTree, LAYER_CHANGES, LIST_MERGED_TREE } from '../../support/layer-changes.js';
import { busyboxImage, chainIds, type TestImage } from '../../support/oci-image.js';

const MAIN = fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url));
const skip = containerdSkipReason();
const serial = skip ? test.skip : test.serial;
if (skip) test('integrity snapshotter: ctr import', (t) => t.pass(`skipped: ${skip}`));

const IMAGE = 'integrity.test/import/app:v1';

let work: string;
let stack: IntegrityStack;
let image: TestImage;

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/integrity-import-');
  image = await busyboxImage(join(work, 'app'), { tag: 'v1', layers: LAYER_CHANGES });
  stack = await startIntegrityStack();
  await stack.withLogs(() => stack.containerd.importLayout(join(work, 'app'), 'integrity.test/import/app'));
});

test.after.always(async () => {
  await stack?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

serial('a container sees exactly the merged tree of the layers', async (t) => {
  const { stdout } = await stack.withLogs(() => stack.containerd.run(IMAGE, ['/bin/sh', '-c', LIST_MERGED_TREE]));
  assertMergedTree(t, stdout);
});

serial("the xattr of the layer is there, seen through the snapshotter's view of the image", async (t) => {
  const root = await stack.containerd.mountImage(IMAGE);
  try {
    const { stdout } = await runCommand('getfattr', ['--only-values', '--name=user.integrity.test', join(root, 'data/attr')]);
    t.is(stdout, 'xattr value');
  } finally {
    await stack.containerd.unmountImage(root);
  }
});

serial('every layer was committed from its blob: its layer.erofs is what `integrityctl layer convert` makes of the blob', async (t) => {
  const chains = chainIds(image.tars);
  for (const [i, layer] of image.manifest.layers.entries()) {
    const blob = join(image.layout.dir, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
    const out = join(work, `layer-${i}.erofs`);
    const { stdout } = await promisify(execFile)(process.execPath, [MAIN, 'layer', 'convert', blob, '-o', out, '--json']);
    const converted = JSON.parse(stdout) as { sha256: string };
    const committed = stack.snapshotter.layerImageOf(chains[i]!);
    t.truthy(committed, `layer ${i + 1} (${chains[i]}) has a layer checked against its chain ID`);
    t.is(await sha256File(committed!), converted.sha256, `layer ${i + 1}`);
  }
  const commits = stack.snapshotter.logs().filter((l) => typeof l.source === 'string' && typeof l.chainId === 'string' && chains.includes(l.chainId));
  t.deepEqual(
    commits.map((l) => [l.chainId, l.source]),
    chains.map((c) => [c, 'blob']),
    'one Commit per layer, each from the blob',
  );
});

serial('containerd wrote every layer into memory, which is empty again; the tmpfs is mounted once', async (t) => {
  const chains = chainIds(image.tars);
  const inMemory = stack.snapshotter.logs().filter((l) => l.msg === 'layer built from its blob; containerd unpacks the upper dir it drops into memory');
  t.deepEqual(inMemory.map((l) => l.chainId), chains);
  const scratch = join(stack.snapshotter.root, 'unpack');
  t.deepEqual(await readdir(scratch), []);
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint === scratch);
  t.deepEqual(mounts.map((m) => m.fsType), ['tmpfs']);
  t.regex(mounts[0]!.superOptions, /size=524288k/, 'memory_mib = 512 by default');
});

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path).on('data', (c) => hash.update(c)).on('error', reject).on('end', () => resolve(hash.digest('hex')));
  });
}
