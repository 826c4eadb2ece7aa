import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../../snapshotter/core/log.js';
import { loadProto } from '../../../snapshotter/core/proto.js';
import type { ProtoGrpcType } from '../../../snapshotter/gen/snapshots.js';
import type { SnapshotsClient } from '../../../snapshotter/gen/containerd/services/snapshots/v1/Snapshots.js';
import type { ListSnapshotsResponse__Output } from '../../../snapshotter/gen/containerd/services/snapshots/v1/ListSnapshotsResponse.js';
import { loadSnapshotsService, snapshotsHandlers } from '../../../snapshotter/service/service.js';
import { steppingClock } from '../../support/metadata-store-suite.js';
import { fakeSnapshotter } from '../../support/snapshotter-fakes.js';

/** A server on a temp socket over a Snapshotter with fake mounts and layers, and a client like containerd's. */
async function serve(t: ExecutionContext) {
  const f = await fakeSnapshotter(steppingClock());
  const dir = await mkdtemp(join(tmpdir(), 'service-'));
  const server = new grpc.Server();
  server.addService(loadSnapshotsService(), snapshotsHandlers(f.snapshotter, silentLogger));
  const address = `unix:${join(dir, 's.sock')}`;
  await new Promise<void>((resolve, reject) => server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  const proto = loadProto<ProtoGrpcType>('containerd/services/snapshots/v1/snapshots.proto');
  const client = new proto.containerd.services.snapshots.v1.Snapshots(address, grpc.credentials.createInsecure());
  t.teardown(async () => {
    client.close();
    server.forceShutdown();
    await f.dispose();
    await rm(dir, { recursive: true, force: true });
  });
  return { f, client };
}

function ns(name = 'default'): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set('containerd-namespace', name);
  return md;
}

type Unary = (req: object, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void;

function call<T>(client: SnapshotsClient, method: keyof SnapshotsClient, req: object, md = ns()): Promise<T> {
  const fn = (client[method] as unknown as Unary).bind(client);
  return new Promise((resolve, reject) => fn(req, md, (err, res) => (err ? reject(err) : resolve(res as T))));
}

function list(client: SnapshotsClient, filters: string[], md = ns()): Promise<ListSnapshotsResponse__Output[]> {
  return new Promise((resolve, reject) => {
    const messages: ListSnapshotsResponse__Output[] = [];
    client.List({ filters }, md).on('data', (m: ListSnapshotsResponse__Output) => messages.push(m)).on('error', reject).on('end', () => resolve(messages));
  });
}

async function code(t: ExecutionContext, promise: Promise<unknown>, status: grpc.status, details?: RegExp): Promise<void> {
  const err = (await t.throwsAsync(promise)) as grpc.ServiceError;
  t.is(err.code, status, err.details);
  if (details) t.regex(err.details, details);
}

test('a request without namespace is FAILED_PRECONDITION, a malformed one INVALID_ARGUMENT', async (t) => {
  const { client } = await serve(t);
  await code(t, call(client, 'Stat', { key: 'a' }, new grpc.Metadata()), grpc.status.FAILED_PRECONDITION, /namespace is required/);
  await code(t, call(client, 'Stat', { key: 'a' }, ns('bad namespace!')), grpc.status.INVALID_ARGUMENT, /not a valid containerd identifier/);
  await code(t, list(client, [], ns('bad namespace!')), grpc.status.INVALID_ARGUMENT);
});

test("without the metadata (containerd 1.6 forwards it only from CRI): the namespace of containerd's backend key; List and Cleanup span all", async (t) => {
  const { client } = await serve(t);
  const none = new grpc.Metadata();
  await call(client, 'Prepare', { key: 'k8s.io/1/a' }, ns('k8s.io'));
  await call(client, 'Prepare', { key: 'default/1/a' }, none);
  const info = await call<{ info: { name: string } }>(client, 'Stat', { key: 'default/1/a' }, none);
  t.is(info.info.name, 'default/1/a');
  await code(t, call(client, 'Stat', { key: 'k8s.io/1/a' }, ns('default')), grpc.status.NOT_FOUND, /in namespace "default" not found/);
  const all = (await list(client, [], none)).flatMap((m) => m.info.map((i) => i.name));
  t.deepEqual(all, ['default/1/a', 'k8s.io/1/a']);
  await call(client, 'Cleanup', {}, none);
  await call(client, 'Remove', { key: 'k8s.io/1/a' }, none);
  t.deepEqual((await list(client, [], ns('k8s.io'))).flatMap((m) => m.info), []);
});

test('prepare, stat with nanosecond times, commit, view, remove over the wire', async (t) => {
  const { client } = await serve(t);
  const prepared = await call<{ mounts: { type: string; options: string[] }[] }>(client, 'Prepare', { key: 'a', labels: { l: 'v' } });
  t.is(prepared.mounts[0]!.type, 'bind');
  const stat = await call<{ info: { name: string; kind: string; created_at: { seconds: string; nanos: number }; updated_at: unknown; labels: object } }>(
    client,
    'Stat',
    { key: 'a' },
  );
  t.is(stat.info.kind, 'ACTIVE');
  t.deepEqual(stat.info.created_at, { seconds: '1700000000', nanos: 123456789 });
  t.deepEqual(stat.info.updated_at, stat.info.created_at);
  t.deepEqual(stat.info.labels, { l: 'v' });
  await call(client, 'Commit', { name: 'c', key: 'a', labels: { x: 'y' } });
  await code(t, call(client, 'Stat', { key: 'a' }), grpc.status.NOT_FOUND, /"a" in namespace "default" not found/);
  const usage = await call<{ size: string; inodes: string }>(client, 'Usage', { key: 'c' });
  t.deepEqual(usage, { size: '0', inodes: '1' });
  const view = await call<{ mounts: { type: string; options: string[] }[] }>(client, 'View', { key: 'v', parent: 'c' });
  t.deepEqual(view.mounts[0]!.options, ['ro', 'rbind']);
  t.deepEqual(await call(client, 'Mounts', { key: 'v' }), view);
  await code(t, call(client, 'Remove', { key: 'c' }), grpc.status.FAILED_PRECONDITION, /remove/);
  await code(t, call(client, 'View', { key: 'v', parent: 'c' }), grpc.status.ALREADY_EXISTS);
  await code(t, call(client, 'Commit', { name: 'x', key: 'v' }), grpc.status.FAILED_PRECONDITION);
  await call(client, 'Remove', { key: 'v' });
  await call(client, 'Remove', { key: 'c' });
  await call(client, 'Cleanup', {});
});

test('update honours labels and labels.<key> masks; other paths are INVALID_ARGUMENT', async (t) => {
  const { client } = await serve(t);
  await call(client, 'Prepare', { key: 'a', labels: { l1: 'v1', l2: 'v2' } });
  const updated = await call<{ info: { labels: object; created_at: unknown; updated_at: unknown } }>(client, 'Update', {
    info: { name: 'a', parent: 'ignored', labels: { l1: 'new', l3: 'v3' } },
    update_mask: { paths: ['labels.l1', 'labels.l2'] },
  });
  t.deepEqual(updated.info.labels, { l1: 'new' });
  t.notDeepEqual(updated.info.updated_at, updated.info.created_at);
  await code(t, call(client, 'Update', { info: { name: 'a' }, update_mask: { paths: ['parent'] } }), grpc.status.INVALID_ARGUMENT, /parent/);
  await code(t, call(client, 'Update', { info: { name: 'a', labels: { big: 'x'.repeat(5000) } } }), grpc.status.INVALID_ARGUMENT, /4096/);
});

test('list filters and sends at most 100 infos per message', async (t) => {
  const { client } = await serve(t);
  for (let i = 0; i < 250; i++) await call(client, 'Prepare', { key: `k${i}`, labels: i % 2 ? { odd: 'yes' } : {} });
  const all = await list(client, []);
  t.deepEqual(all.map((m) => m.info.length), [100, 100, 50]);
  const odd = (await list(client, ['labels.odd==yes', 'name==k0'])).flatMap((m) => m.info);
  t.is(odd.length, 126);
  t.deepEqual(await list(client, ['name==none']), []);
  t.deepEqual(await list(client, [], ns('other')), []);
  await code(t, list(client, ['name==']), grpc.status.INVALID_ARGUMENT, /invalid filter/);
});
