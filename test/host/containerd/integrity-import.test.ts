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
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { runCommand } from '../../support/command.js';
import { containerdSkipReason } from '../../support/containerd.js';
import { startIntegrityStack, type IntegrityStack } from '../../support/integrity-snapshotter.js';
import { busyboxImage, chainIds, opaqueEntry, whiteoutEntry, type FileSpec, type TestImage } from '../../support/oci-image.js';

const MAIN = fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url));
const skip = containerdSkipReason();
const serial = skip ? test.skip : test.serial;
if (skip) test('integrity snapshotter: ctr import', (t) => t.pass(`skipped: ${skip}`));

/** Three layers over busybox: every way a layer changes what is below it. */
const LAYERS: FileSpec[][] = [
  [
    { path: 'data/' },
    { path: 'data/keep', data: 'kept\n' },
    { path: 'data/gone', data: 'deleted by the layer above\n' },
    { path: 'data/old/' },
    { path: 'data/old/hidden', data: 'hidden by the opaque marker above\n' },
    { path: 'data/link', type: 'symlink', linkTarget: 'keep' },
    { path: 'data/hard', type: 'hardlink', linkTarget: 'data/keep' },
    { path: 'data/attr', data: 'x', xattrs: { 'user.integrity.test': 'xattr value' } },
    { path: 'data/exec', data: '#!/bin/sh\n', mode: 0o755 },
    { path: 'data/tree/' },
    { path: 'data/tree/sub/' },
    { path: 'data/tree/sub/file', data: 'below a directory that becomes a file\n' },
    { path: 'data/wd/' },
    { path: 'data/wd/child', data: 'deleted with its directory\n' },
  ],
  [
    whiteoutEntry('data/gone'),
    { path: 'data/old/' },
    opaqueEntry('data/old'),
    { path: 'data/old/new', data: 'new\n' },
    { path: 'data/tree', data: 'tree is a file now\n' },
    whiteoutEntry('data/wd'),
  ],
  // Parent directories listed, as image builders write them: a directory a
  // layer creates only implicitly gets mkfs.erofs's mode, not containerd's 0755
  // (docs/snapshotter.md, "Layer semantics").
  [
    { path: 'data/' },
    { path: 'data/gone', data: 'back again\n' },
    { path: 'data/wd/' },
  ],
];

/** What `LIST` prints in a container of the image: the merged tree, one line per path. */
const EXPECTED = [
  '/data dir 755',
  '/data/attr file 644 1 x',
  '/data/exec file 755 1 #!/bin/sh',
  '/data/gone file 644 1 back again',
  '/data/hard file 644 2 kept',
  '/data/keep file 644 2 kept',
  '/data/link symlink keep',
  '/data/old dir 755',
  '/data/old/new file 644 1 new',
  '/data/tree file 644 1 tree is a file now',
  '/data/wd dir 755',
];
const LIST = [
  'find /data | sort | while read p; do',
  '  if [ -L "$p" ]; then echo "$p symlink $(readlink "$p")";',
  '  elif [ -d "$p" ]; then echo "$p dir $(stat -c %a "$p")";',
  '  else echo "$p file $(stat -c \'%a %h\' "$p") $(cat "$p")"; fi',
  'done',
  'stat -c %i /data/keep /data/hard',
].join('\n');

const IMAGE = 'integrity.test/import/app:v1';

let work: string;
let stack: IntegrityStack;
let image: TestImage;

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/integrity-import-');
  image = await busyboxImage(join(work, 'app'), { tag: 'v1', layers: LAYERS });
  stack = await startIntegrityStack();
  await stack.withLogs(() => stack.containerd.importLayout(join(work, 'app'), 'integrity.test/import/app'));
});

test.after.always(async () => {
  await stack?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

serial('a container sees exactly the merged tree of the layers', async (t) => {
  const { stdout } = await stack.withLogs(() => stack.containerd.run(IMAGE, ['/bin/sh', '-c', LIST]));
  const lines = stdout.trimEnd().split('\n');
  t.deepEqual(lines.slice(0, -2), EXPECTED);
  const [keep, hard] = lines.slice(-2);
  t.is(keep, hard, 'the hard link is one inode');
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

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path).on('data', (c) => hash.update(c)).on('error', reject).on('end', () => resolve(hash.digest('hex')));
  });
}
