/**
 * The pull path of the snapshotter with fake containerd services: the fast
 * path (convert at Prepare, ALREADY_EXISTS), the writable path and Commit
 * from the blob, and the checks that keep a wrong blob out.
 */
import test from 'ava';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AlreadyExistsError, IntegrityViolationError } from '../../../snapshotter/core/errors.js';
import { CRI_IMAGE_LAYERS_LABEL, CRI_IMAGE_REF_LABEL, CRI_LAYER_DIGEST_LABEL, SNAPSHOT_REF_LABEL } from '../../../snapshotter/service/pull/source.js';
import { silentLogger } from '../../../snapshotter/core/log.js';
import { RegistryClient } from '../../../snapshotter/service/registry/client.js';
import { UnpackScratch } from '../../../snapshotter/service/unpack-scratch.js';
import { BlobServer } from '../../support/blob-server.js';
import { addImage, digestOf } from '../../support/containerd-fakes.js';
import { pullFakes } from '../../support/pull-fakes.js';
import { fakeLayerContents, snapshotDirectories } from '../../support/snapshotter-fakes.js';
import { until } from '../../support/until.js';

const NS = 'k8s.io';
const LAYERS = [Buffer.from('layer one'), Buffer.from('layer two')];

/** The labels containerd's unpacker and CRI put on the Prepare of layer `i`. */
function criLabels(chainId: string, digest: string, image = 'r/app:1') {
  return { [SNAPSHOT_REF_LABEL]: chainId, [CRI_LAYER_DIGEST_LABEL]: digest, [CRI_IMAGE_REF_LABEL]: image, 'containerd.io/snapshot/other': 'x' };
}

const unpackKey = (seq: number, chainId: string) => `${NS}/${seq}/extract-${seq}-abc ${chainId}`;

test('fast path: the blob is converted at Prepare, committed under the chain ID with the labels, ALREADY_EXISTS', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, NS, 'r/app:1', LAYERS);
  images.records.set(NS, []); // a CRI pull creates the image record only after the unpack
  const [c1, c2] = img.chainIds as [string, string];
  const labels1 = criLabels(c1, img.layers[0]!);
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, c1), '', labels1), { instanceOf: AlreadyExistsError, message: new RegExp(c1) });
  // Named like containerd names committed layers in its backend: <namespace>/<sequence>/<chain ID>.
  const name1 = `${NS}/1/${c1}`;
  const info = f.snapshotter.stat(NS, name1);
  t.like(info, { kind: 'committed', parent: '', labels: labels1 });
  t.deepEqual(f.store.layerOrigin(NS, name1), { id: f.store.getInfo(NS, name1).id, chainId: c1, images: ['r/app:1'] });
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo(NS, name1).id)), [`blob ${img.layers[0]}`]);

  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(2, c2), name1, criLabels(c2, img.layers[1]!)), { instanceOf: AlreadyExistsError });
  const name2 = `${NS}/2/${c2}`;
  t.is(f.snapshotter.stat(NS, name2).parent, name1);
  t.is(f.store.layerOrigin(NS, name2).chainId, c2, 'the chain was checked against the parent');
  // What containerd's metadata layer looks for after ALREADY_EXISTS:
  t.deepEqual(f.snapshotter.list(NS, [`labels."containerd.io/snapshot.ref"==${c2},parent=="${name1}"`]).map((i) => i.name), [name2]);
  t.is(f.layers.blobCommits, 2);
  t.deepEqual(f.snapshotter.list(NS, ['kind==active']), [], 'no active snapshot was ever made');
  t.deepEqual(f.mounter.calls, [], 'nothing was mounted');
});

test('concurrent Prepares of one layer convert it once; all answer ALREADY_EXISTS', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, NS, 'r/app:1', LAYERS.slice(0, 1));
  const c1 = img.chainIds[0]!;
  const results = await Promise.allSettled([1, 2, 3].map((i) => f.snapshotter.prepare(NS, unpackKey(i, c1), '', criLabels(c1, img.layers[0]!))));
  t.true(results.every((r) => r.status === 'rejected' && r.reason instanceof AlreadyExistsError));
  t.is(f.layers.blobCommits, 1);
  t.deepEqual(f.snapshotter.list(NS, []).map((i) => i.name.endsWith(`/${c1}`)), [true]);
});

test('no blob yet: the writable path; Commit then builds the layer from the blob, not from the upper dir', async (t) => {
  const { f, content } = await pullFakes(t);
  const digest = digestOf(LAYERS[0]!);
  const labels = criLabels(digest, digest);
  const key = unpackKey(1, digest);
  const mounts = await f.snapshotter.prepare(NS, key, '', labels);
  t.is(mounts[0]!.type, 'bind');
  const { id } = f.store.getInfo(NS, key);
  await writeFile(join(f.layout.upper(id), 'applied-by-containerd'), 'x');
  content.add(NS, LAYERS[0]!); // containerd fetched it before applying
  await f.snapshotter.commit(NS, `${NS}/2/${digest}`, key, labels);
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(id)), [`blob ${digest}`]);
  t.is(f.store.layerOrigin(NS, `${NS}/2/${digest}`).chainId, digest);
  t.deepEqual(await readdir(f.layout.snapshot(id)), ['layer.erofs', 'layer.verity'], 'the upper dir is gone');
});

test('ctr import (no labels): the writable path, Commit resolves the chain ID through the images and converts the blob', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, 'default', 'docker.io/r/app:1', LAYERS);
  const [c1, c2] = img.chainIds as [string, string];
  let parent = '';
  for (const [i, chainId] of [c1, c2].entries()) {
    const key = `default/${10 + i}/extract-${i}-xyz ${chainId}`;
    await f.snapshotter.prepare('default', key, parent, {});
    const name = `default/${20 + i}/${chainId}`;
    await f.snapshotter.commit('default', name, key, {});
    t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo('default', name).id)), [`blob ${img.layers[i]}`]);
    t.deepEqual(f.store.layerOrigin('default', name).images, ['docker.io/r/app:1']);
    t.is(f.store.layerOrigin('default', name).chainId, chainId);
    parent = name;
  }
});

test('a chain ID no image knows and no label names: the layer is built from the upper dir', async (t) => {
  const { f } = await pullFakes(t);
  const chainId = digestOf(Buffer.from('unknown'));
  const key = `default/1/extract-1-a ${chainId}`;
  await f.snapshotter.prepare('default', key, '', {});
  await writeFile(join(f.layout.upper(f.store.getInfo('default', key).id), 'file'), 'x');
  await f.snapshotter.commit('default', `default/2/${chainId}`, key, {});
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo('default', `default/2/${chainId}`).id)), ['file']);
  t.is(f.store.layerOrigin('default', `default/2/${chainId}`).chainId, undefined);
  t.is(f.layers.blobCommits, 0);
});

test("a blob that does not make the chain containerd asked for is refused and nothing is committed", async (t) => {
  const { f, content } = await pullFakes(t);
  const digest = content.add(NS, LAYERS[0]!);
  const wrongChain = digestOf(Buffer.from('another layer'));
  const err = await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, wrongChain), '', criLabels(wrongChain, digest)), {
    instanceOf: IntegrityViolationError,
  });
  t.regex(err!.message, new RegExp(`${digest}.*not ${wrongChain}`));
  t.deepEqual(f.snapshotter.list(NS, []), []);
  t.deepEqual(await snapshotDirectories(f.layout), []);
});

test('a blob whose bytes do not match its digest is refused', async (t) => {
  const { f, content } = await pullFakes(t);
  const digest = content.add(NS, LAYERS[0]!);
  content.blobs.get(NS)!.set(digest, Buffer.from('tampered'));
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, digest), '', criLabels(digest, digest)), { instanceOf: IntegrityViolationError });
  t.deepEqual(f.snapshotter.list(NS, []), []);
});

test('containerd down: unpacks take the writable path and commit from the upper dir', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, NS, 'r/app:1', LAYERS.slice(0, 1));
  content.down = true;
  images.down = true;
  const c1 = img.chainIds[0]!;
  const key = unpackKey(1, c1);
  await f.snapshotter.prepare(NS, key, '', criLabels(c1, img.layers[0]!));
  await f.snapshotter.commit(NS, `${NS}/2/${c1}`, key, criLabels(c1, img.layers[0]!));
  t.is(f.layers.blobCommits, 0);
  t.deepEqual(f.store.layerOrigin(NS, `${NS}/2/${c1}`).images, ['r/app:1'], 'the image CRI named is recorded all the same');
});

test('ctr import: each layer converts once, from Prepare on, while containerd writes the upper dir; Commit takes it', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, 'default', 'docker.io/r/app:1', LAYERS);
  const c1 = img.chainIds[0]!;
  const key = `default/10/extract-0-xyz ${c1}`;
  await f.snapshotter.prepare('default', key, '', {});
  const dir = f.layout.snapshot(f.store.getInfo('default', key).id);
  // A Cleanup while containerd writes the upper dir leaves the layer built ahead alone.
  await until('the layer built ahead', async () => ((await readdir(dir)).includes('layer.erofs') ? true : undefined), 10_000);
  await f.snapshotter.cleanup();
  t.deepEqual((await readdir(dir)).sort(), ['fs', 'layer.erofs', 'layer.verity', 'work'], 'built before the Commit');
  await f.snapshotter.commit('default', `default/20/${c1}`, key, {});
  // The layer above it was converted ahead of its own unpack.
  await until('the layer above converted', () => (f.layers.blobCommits >= 2 ? true : undefined), 10_000);
  t.is(f.layers.blobCommits, 2, 'each layer converted once');
  t.deepEqual(await fakeLayerContents(dir), [`blob ${img.layers[0]}`]);
  t.is(f.store.layerOrigin('default', `default/20/${c1}`).chainId, c1);
});

/** pullFakes with unpack scratch memory of `limitBytes` in a plain directory (unit tests do not mount). */
async function withScratch(t: import('ava').ExecutionContext, limitBytes: number) {
  const dir = await mkdtemp(join(tmpdir(), 'scratch-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const noMount = { mountTmpfs: async () => {}, unmount: async () => {}, isMounted: async () => false };
  const scratch = new UnpackScratch({ dir, limitBytes, mounter: noMount, logger: silentLogger });
  await scratch.start();
  return { ...(await pullFakes(t, {}, undefined, { scratch })), dir };
}

test('ctr import with scratch memory: the layer is built at Prepare, containerd writes into memory, Commit takes the layer and frees the memory', async (t) => {
  const { f, content, images, dir } = await withScratch(t, 1 << 20);
  const img = addImage(content, images, 'default', 'docker.io/r/app:1', LAYERS);
  const [c1, c2] = img.chainIds as [string, string];
  let parent = '';
  for (const [i, chainId] of [c1, c2].entries()) {
    const key = `default/${10 + i}/extract-${i}-xyz ${chainId}`;
    const [mount] = await f.snapshotter.prepare('default', key, parent, {});
    const { id } = f.store.getInfo('default', key);
    t.true((await readdir(f.layout.snapshot(id))).includes('layer.erofs'), 'built before Prepare returned');
    const upper = join(dir, String(id), 'fs');
    t.true(i === 0 ? mount!.source === upper : mount!.options.includes(`upperdir=${upper}`), JSON.stringify(mount));
    await writeFile(join(upper, 'applied-by-containerd'), 'xyz');
    t.is((await f.snapshotter.usage('default', key)).size > 0, true, 'usage reads the upper dir in memory');
    const name = `default/${20 + i}/${chainId}`;
    await f.snapshotter.commit('default', name, key, {});
    t.deepEqual(await fakeLayerContents(f.layout.snapshot(id)), [`blob ${img.layers[i]}`]);
    t.deepEqual(await readdir(dir), [], 'the memory is free again');
    parent = name;
  }
  t.is(f.layers.blobCommits, 2, 'each layer converted once: the second while containerd wrote the first');
});

test('ctr import with scratch memory: a layer that does not fit is written to the disk; a Remove frees what an unpack held', async (t) => {
  const { f, content, images, dir } = await withScratch(t, 10_000);
  const img = addImage(content, images, 'default', 'docker.io/r/app:1', LAYERS);
  const c1 = img.chainIds[0]!;
  const key = `default/10/extract-0-xyz ${c1}`;
  const [first] = await f.snapshotter.prepare('default', key, '', {});
  t.true(first!.source.startsWith(join(dir, String(f.store.getInfo('default', key).id))), 'fits');
  const other = `default/11/extract-1-xyz ${c1}`;
  const [second] = await f.snapshotter.prepare('default', other, '', {});
  t.is(second!.source, f.layout.upper(f.store.getInfo('default', other).id), 'the memory is taken: on the disk');
  await f.snapshotter.remove('default', key);
  t.deepEqual(await readdir(dir), []);
  const again = `default/12/extract-2-xyz ${c1}`;
  const [third] = await f.snapshotter.prepare('default', again, '', {});
  t.true(third!.source.startsWith(dir), 'free again after the Remove');
});

test('ctr import with scratch memory: a Commit that names another chain builds the layer from what containerd wrote into memory', async (t) => {
  const { f, content, images, built } = await withScratch(t, 1 << 20);
  const img = addImage(content, images, 'default', 'docker.io/r/app:1', LAYERS);
  const key = `default/10/extract-0-xyz ${img.chainIds[0]}`;
  const [mount] = await f.snapshotter.prepare('default', key, '', {});
  await writeFile(join(mount!.source, 'file'), 'x');
  const other = digestOf(Buffer.from('another chain'));
  await f.snapshotter.commit('default', `default/20/${other}`, key, {});
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo('default', `default/20/${other}`).id)), ['file']);
  t.deepEqual(built, ['upper']);
});

test('ctr import: a layer built ahead counts only for the chain the Commit names, and goes with a Remove', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, 'default', 'docker.io/r/app:1', LAYERS);
  const c1 = img.chainIds[0]!;
  const other = digestOf(Buffer.from('unknown'));
  const key = `default/10/extract-0-xyz ${c1}`;
  await f.snapshotter.prepare('default', key, '', {});
  await writeFile(join(f.layout.upper(f.store.getInfo('default', key).id), 'file'), 'x');
  await f.snapshotter.commit('default', `default/20/${other}`, key, {});
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo('default', `default/20/${other}`).id)), ['file'], 'built from the upper dir');
  const again = `default/11/extract-1-xyz ${c1}`;
  await f.snapshotter.prepare('default', again, '', {});
  await f.snapshotter.remove('default', again);
  // The layer above, converted ahead for an unpack that will not come, goes when nobody takes it (here: at close).
  await f.snapshotter.close();
  t.deepEqual((await snapshotDirectories(f.layout)).length, 1, 'only the committed layer is left');
});

test('CRI pull: at the first layer without its blob, it and the layers above are converted as their blobs arrive; Commit and Prepares take them', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, NS, 'r/app:1', LAYERS);
  images.records.set(NS, []);
  const [c1, c2] = img.chainIds as [string, string];
  const [d1, d2] = img.layers as [string, string];
  for (const d of [d1, d2]) content.delete(NS, d);
  const labels1 = { ...criLabels(c1, d1), [CRI_IMAGE_LAYERS_LABEL]: `${d1},${d2}` };
  const key1 = unpackKey(1, c1);
  await f.snapshotter.prepare(NS, key1, '', labels1);
  const dir1 = f.layout.snapshot(f.store.getInfo(NS, key1).id);

  // containerd fetches the blobs (one fetch in progress at a time), then applies layer 1.
  const ingest = { ref: `layer-${d1}`, offset: 0 };
  content.ingesting.set(NS, [ingest]);
  const grow = setInterval(() => (ingest.offset += 1), 5);
  await new Promise((resolve) => setTimeout(resolve, 100));
  clearInterval(grow);
  content.add(NS, LAYERS[0]!);
  content.add(NS, LAYERS[1]!);
  content.ingesting.set(NS, []);
  await writeFile(join(f.layout.upper(f.store.getInfo(NS, key1).id), 'applied-by-containerd'), 'x');
  await until('both blobs read', () => (content.reads.length >= 2 ? true : undefined), 10_000);
  // Both waited for containerd's fetch, so they converted in the order their blobs were seen.
  t.deepEqual([...content.reads].sort(), [d1, d2].sort(), 'both converted while containerd applies layer 1');
  await f.snapshotter.cleanup(); // leaves the conversions ahead alone
  await f.snapshotter.commit(NS, `${NS}/2/${c1}`, key1, labels1);
  t.deepEqual(await fakeLayerContents(dir1), [`blob ${d1}`]);
  t.is(f.store.layerOrigin(NS, `${NS}/2/${c1}`).chainId, c1);

  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(3, c2), `${NS}/2/${c1}`, criLabels(c2, d2)), { instanceOf: AlreadyExistsError });
  t.is(f.store.layerOrigin(NS, `${NS}/3/${c2}`).chainId, c2, 'the chain was checked when it was taken');
  t.is(f.layers.blobCommits, 2, 'each layer converted once');
  t.deepEqual([...content.reads].sort(), [d1, d2].sort(), 'each blob read once');
  t.deepEqual((await snapshotDirectories(f.layout)).length, 2, 'no directory of a conversion ahead is left');
});

test('CRI pull: a conversion ahead whose blob is not what the chain needs is refused when taken, and nothing is left', async (t) => {
  const { f, content, images } = await pullFakes(t);
  const img = addImage(content, images, NS, 'r/app:1', LAYERS);
  images.records.set(NS, []);
  const [c1] = img.chainIds as [string, string];
  const [d1, d2] = img.layers as [string, string];
  content.delete(NS, d1);
  await f.snapshotter.prepare(NS, unpackKey(1, c1), '', { ...criLabels(c1, d1), [CRI_IMAGE_LAYERS_LABEL]: `${d1},${d2}` });
  content.add(NS, LAYERS[0]!);
  const wrongChain = digestOf(Buffer.from('another chain'));
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(2, wrongChain), '', criLabels(wrongChain, d2)), { instanceOf: IntegrityViolationError });
  await f.snapshotter.remove(NS, unpackKey(1, c1));
  await f.snapshotter.close();
  t.deepEqual(await snapshotDirectories(f.layout), []);
});

/** A real HTTP registry holding `LAYERS`, and a RegistryClient whose hosts directory sends `registry.test` to it. */
async function registryFor(t: import('ava').ExecutionContext) {
  const server = await BlobServer.start();
  const hosts = await mkdtemp(join(tmpdir(), 'hosts-'));
  t.teardown(async () => {
    await server.stop();
    await rm(hosts, { recursive: true, force: true });
  });
  await mkdir(join(hosts, 'registry.test'));
  await writeFile(join(hosts, 'registry.test', 'hosts.toml'), `server = "${server.url}"\n`);
  for (const layer of LAYERS) server.add(layer);
  return { server, client: new RegistryClient({ hostsDir: hosts, logger: silentLogger }) };
}

/** A CRI pull of the two layers of `registry.test/app:1`, none of whose blobs containerd has. */
async function criPullFromRegistry(t: import('ava').ExecutionContext) {
  const registry = await registryFor(t);
  const fakes = await pullFakes(t, {}, undefined, { registry: registry.client });
  const img = addImage(fakes.content, fakes.images, NS, 'registry.test/app:1', LAYERS);
  fakes.images.records.set(NS, []);
  for (const d of img.layers) fakes.content.delete(NS, d);
  const [c1, c2] = img.chainIds as [string, string];
  const [d1, d2] = img.layers as [string, string];
  const labels = (c: string, d: string, above: string) => ({ ...criLabels(c, d, 'registry.test/app:1'), [CRI_IMAGE_LAYERS_LABEL]: above });
  return { ...fakes, ...registry, c1, c2, d1, d2, labels1: labels(c1, d1, `${d1},${d2}`), labels2: labels(c2, d2, d2) };
}

test('CRI pull, blobs not in containerd: fetched from the registry and converted at Prepare; containerd unpacks and fetches nothing', async (t) => {
  const { f, content, server, built, c1, c2, d1, d2, labels1, labels2 } = await criPullFromRegistry(t);
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, c1), '', labels1), { instanceOf: AlreadyExistsError });
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(2, c2), `${NS}/1/${c1}`, labels2), { instanceOf: AlreadyExistsError });
  t.is(f.store.layerOrigin(NS, `${NS}/2/${c2}`).chainId, c2, 'the chain was checked');
  t.deepEqual(f.store.layerOrigin(NS, `${NS}/1/${c1}`).images, ['registry.test/app:1']);
  t.deepEqual(server.requests.map((r) => r.path), [`/v2/app/blobs/${d1}`, `/v2/app/blobs/${d2}`]);
  t.deepEqual(content.reads, []);
  t.deepEqual(f.snapshotter.list(NS, ['kind==active']), []);
  t.deepEqual(built, ['registry', 'registry'], 'counted by where the bytes came from');
});

test('CRI pull, the registry drops the connection during the first blob: that layer goes the writable way, containerd fetches; the registry is not asked again', async (t) => {
  const { f, content, server, built, c1, c2, d1, labels1, labels2 } = await criPullFromRegistry(t);
  server.behaviour = { cutAfter: 3 };
  const key1 = unpackKey(1, c1);
  const mounts = await f.snapshotter.prepare(NS, key1, '', labels1);
  t.is(mounts[0]!.type, 'bind', 'a writable snapshot for containerd to unpack into');
  t.is(server.requests.length, 1);
  content.add(NS, LAYERS[0]!);
  content.add(NS, LAYERS[1]!);
  await f.snapshotter.commit(NS, `${NS}/1/${c1}`, key1, labels1);
  t.deepEqual(await fakeLayerContents(f.layout.snapshot(f.store.getInfo(NS, `${NS}/1/${c1}`).id)), [`blob ${d1}`]);
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(2, c2), `${NS}/1/${c1}`, labels2), { instanceOf: AlreadyExistsError });
  t.is(server.requests.length, 1, 'layer 2 came from containerd: the registry is in its back-off');
  t.deepEqual(built, ['containerd', 'containerd']);
  t.is((await snapshotDirectories(f.layout)).length, 2, 'no directory of the failed fetch is left');
});

test('CRI pull, the registry serves other bytes than the digest: refused, nothing committed, nothing left', async (t) => {
  const { f, server, c1, d1, labels1 } = await criPullFromRegistry(t);
  server.blobs.set(d1, Buffer.from('not the layer'));
  await t.throwsAsync(f.snapshotter.prepare(NS, unpackKey(1, c1), '', labels1), { instanceOf: IntegrityViolationError, message: /digest mismatch/ });
  t.deepEqual(f.snapshotter.list(NS, []), []);
  await f.snapshotter.close();
  t.deepEqual(await snapshotDirectories(f.layout), []);
});
