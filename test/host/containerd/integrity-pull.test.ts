/**
 * CRI PullImage from a real registry into the integrity snapshotter under
 * containerd 1.6 — the path with the `containerd.io/snapshot/cri.*` labels.
 *
 * containerd's unpacker prepares a layer before it fetches the layer's blob,
 * and starts fetching only once the first missing layer's Prepare succeeded.
 * So the snapshotter fetches the blobs of a fresh pull from the registry
 * itself (the registry hosts containerd uses), converts every layer at its
 * Prepare and answers ALREADY_EXISTS: containerd unpacks nothing. When the
 * registry cannot be reached from the snapshotter, the first layer takes the
 * writable path (and is committed from the blob containerd then fetches), and
 * every layer above it is converted once containerd fetched it. With every
 * blob already in containerd, no layer is unpacked either.
 */
import test from 'ava';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { convertLayer } from '../../../snapshotter/layer/convert.js';
import { containerdSkipReason } from '../../support/containerd.js';
import { startIntegrityStack, type IntegrityStack, type LogLine } from '../../support/integrity-snapshotter.js';
import { buildImage, busyboxImage, chainIds, type TestImage } from '../../support/oci-image.js';
import { Registry, registrySkipReason } from '../../support/registry.js';
import { createHash } from 'node:crypto';

const skip = containerdSkipReason() ?? registrySkipReason();
const serial = skip ? test.skip : test.serial;
if (skip) test('integrity snapshotter: CRI pulls', (t) => t.pass(`skipped: ${skip}`));

/** Image references name this host; containerd's hosts config sends them to the local registry. */
const HOST = 'registry.test';
const FRESH = `${HOST}/test/fresh:v1`;
const PREFETCHED = `${HOST}/test/prefetched:v1`;
/** A host containerd reaches and the snapshotter does not: its hosts.toml names a closed port. */
const UNREACHABLE_HOST = 'unreachable.test';
const UNREACHABLE = `${UNREACHABLE_HOST}/test/unreachable:v1`;

let work: string;
let registry: Registry;
let stack: IntegrityStack;
let fresh: TestImage;
let prefetched: TestImage;
let unreachable: TestImage;

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/integrity-pull-');
  fresh = await busyboxImage(join(work, 'fresh'), {
    tag: 'v1',
    layers: [1, 2, 3].map((n) => [{ path: 'data/' }, { path: `data/fresh-${n}`, data: `layer ${n}\n` }]),
  });
  // No busybox: its bottom layer is new too, so every Prepare of its pull has something to do.
  prefetched = await buildImage(join(work, 'prefetched'), [1, 2, 3].map((n) => [{ path: 'data/' }, { path: `data/pre-${n}`, data: `pre ${n}\n` }]), { tag: 'v1' });
  unreachable = await buildImage(join(work, 'unreachable'), [1, 2, 3].map((n) => [{ path: 'data/' }, { path: `data/far-${n}`, data: `far ${n}\n` }]), { tag: 'v1' });
  registry = await Registry.start();
  await registry.push(`${join(work, 'fresh')}:v1`, 'test/fresh:v1');
  await registry.push(`${join(work, 'prefetched')}:v1`, 'test/prefetched:v1');
  await registry.push(`${join(work, 'unreachable')}:v1`, 'test/unreachable:v1');
  stack = await startIntegrityStack({
    registryMirrors: { [HOST]: registry.url, [UNREACHABLE_HOST]: 'http://127.0.0.1:1' },
    containerdRegistryMirrors: { [UNREACHABLE_HOST]: registry.url },
  });
});

test.after.always(async () => {
  await stack?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** The snapshotter's lines about `chainId` that say which way its layer was built. */
function pathOf(lines: LogLine[], chainId: string): string[] {
  return lines.filter((l) => l.chainId === chainId && typeof l.source === 'string').map((l) => `${l.source}: ${l.msg}`);
}

const WRITABLE = 'upper: layer blob not in containerd yet: containerd unpacks into a writable snapshot';
const COMMIT_FROM_BLOB = "blob: layer built from its blob; the upper dir is dropped";
const FAST = 'blob: layer converted from its blob at Prepare; containerd skips its unpack';

/** Where the blobs of the layers converted at Prepare came from, in the order of `chains`. */
function fetchedFrom(lines: LogLine[], chains: readonly string[]): unknown[] {
  return chains.map((chainId) => lines.find((l) => l.chainId === chainId && l.msg === FAST.slice('blob: '.length))?.from);
}

serial('a fresh pull: every layer fetched from the registry by the snapshotter and converted at Prepare; containerd fetches and unpacks none', async (t) => {
  const mark = stack.snapshotter.logs().length;
  await stack.withLogs(() => stack.containerd.cri.pullImage(FRESH));
  const lines = stack.snapshotter.logs().slice(mark);
  const chains = chainIds(fresh.tars);
  for (const chainId of chains) t.deepEqual(pathOf(lines, chainId), [FAST], chainId);
  t.deepEqual(fetchedFrom(lines, chains), chains.map(() => 'registry'));
  t.deepEqual(lines.filter((l) => l.msg === 'snapshot created'), [], 'no Prepare of this pull made a snapshot containerd could unpack into');
  // containerd fetched only what it resolved: the manifest and the config, no layer.
  const content = (await stack.containerd.ctr(['content', 'ls', '--quiet'])).stdout;
  t.deepEqual(fresh.manifest.layers.filter((l) => content.includes(l.digest)), []);
  t.true(content.includes(fresh.manifest.config.digest));

  // The CRI labels stay on the committed snapshot, as containerd's metadata sees it.
  const top = chains.at(-1)!;
  const { stdout } = await stack.containerd.ctr(['snapshots', '--snapshotter', 'integrity', 'info', top]);
  const labels = (JSON.parse(stdout) as { Labels?: Record<string, string> }).Labels ?? {};
  t.is(labels['containerd.io/snapshot.ref'], top);
  t.is(labels['containerd.io/snapshot/cri.layer-digest'], fresh.manifest.layers.at(-1)!.digest);
  t.is(labels['containerd.io/snapshot/cri.image-ref'], FRESH);

  // Fast path or not, every layer is the blob's conversion.
  for (const [i, layer] of fresh.manifest.layers.entries()) {
    const blob = join(fresh.layout.dir, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
    const converted = await convertLayer(createReadStream(blob), { output: join(work, `fresh-${i}.erofs`) });
    t.is(await sha256Of(stack.snapshotter.layerImageOf(chains[i]!)!), converted.sha256, `layer ${i + 1}`);
  }
});

serial('every blob already in containerd: every layer converted at Prepare, no unpack snapshot is ever made', async (t) => {
  await stack.withLogs(() => stack.containerd.ctr(['content', 'fetch', '--hosts-dir', stack.containerd.hostsDir!, PREFETCHED]));
  const mark = stack.snapshotter.logs().length;
  await stack.withLogs(() => stack.containerd.cri.pullImage(PREFETCHED));
  const lines = stack.snapshotter.logs().slice(mark);
  for (const chainId of chainIds(prefetched.tars)) t.deepEqual(pathOf(lines, chainId), [FAST], chainId);
  t.deepEqual(
    lines.filter((l) => l.msg === 'snapshot created').map((l) => l.key),
    [],
    'no Prepare of this pull made a snapshot containerd could unpack into',
  );
  const { stdout } = await stack.containerd.ctr(['snapshots', '--snapshotter', 'integrity', 'ls']);
  t.notRegex(stdout, /extract-/, 'and none is left');
});

serial('a registry the snapshotter cannot reach: containerd fetches, the first layer is unpacked and committed from its blob, the others converted at Prepare', async (t) => {
  const mark = stack.snapshotter.logs().length;
  await stack.withLogs(() => stack.containerd.cri.pullImage(UNREACHABLE));
  const lines = stack.snapshotter.logs().slice(mark);
  const chains = chainIds(unreachable.tars);
  t.deepEqual(pathOf(lines, chains[0]!), [WRITABLE, COMMIT_FROM_BLOB]);
  for (const chainId of chains.slice(1)) t.deepEqual(pathOf(lines, chainId), [FAST], chainId);
  t.deepEqual(fetchedFrom(lines, chains.slice(1)), chains.slice(1).map(() => 'containerd'));
  const refused = lines.filter((l) => l.msg === 'cannot fetch the layer blob from the registry; containerd fetches it');
  t.deepEqual(refused.map((l) => l.digest), [unreachable.manifest.layers[0]!.digest], 'tried once, for the layer whose Prepare waited');
  t.regex(JSON.stringify(refused[0]!.err), /127\.0\.0\.1:1.*ECONNREFUSED/);
});

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
