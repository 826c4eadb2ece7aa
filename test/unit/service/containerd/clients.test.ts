/**
 * The gRPC clients against a stand-in for containerd's content and image
 * services on a unix socket: the namespace metadata on every call, the wire
 * fields, and how failures become our errors. (The host tests talk to a real
 * containerd 1.6.)
 */
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NotFoundError, UnavailableError } from '../../../../snapshotter/core/errors.js';
import { loadProto } from '../../../../snapshotter/core/proto.js';
import type { ProtoGrpcType as ContentProto } from '../../../../snapshotter/gen/content.js';
import type { ProtoGrpcType as ImagesProto } from '../../../../snapshotter/gen/images.js';
import { ContainerdConnection } from '../../../../snapshotter/service/containerd/connection.js';
import { GrpcContentClient } from '../../../../snapshotter/service/containerd/content.js';
import { GrpcImageClient } from '../../../../snapshotter/service/containerd/images.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const BLOB = Buffer.from('0123456789'.repeat(10_000));

/** Serves Content (Info, Read, ListStatuses) and Images (List) like containerd does, recording each call's namespace. */
async function fakeContainerd(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'ctd-clients-'));
  const socket = join(dir, 'containerd.sock');
  const namespaces: string[] = [];
  const ns = (call: { metadata: grpc.Metadata }) => {
    const value = String(call.metadata.get('containerd-namespace')[0] ?? '');
    namespaces.push(value);
    return value;
  };
  const notFound = (what: string) => Object.assign(new Error(what), { code: grpc.status.NOT_FOUND, details: `${what}: not found` });
  const server = new grpc.Server();
  const content = loadProto<ContentProto>('containerd/services/content/v1/content.proto').containerd.services.content.v1.Content;
  server.addService(content.service, {
    Info: (call: grpc.ServerUnaryCall<{ digest: string }, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      if (ns(call) !== 'k8s.io' || call.request.digest !== DIGEST) return cb(notFound(`content digest ${call.request.digest}`));
      cb(null, { info: { digest: DIGEST, size: BLOB.length } });
    },
    Read: (call: grpc.ServerWritableStream<{ digest: string }, unknown>) => {
      if (ns(call) !== 'k8s.io') return call.emit('error', notFound('content'));
      for (let i = 0; i < BLOB.length; i += 32 << 10) call.write({ offset: i, data: BLOB.subarray(i, i + (32 << 10)) });
      call.end();
    },
    ListStatuses: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      ns(call);
      cb(null, { statuses: [{ ref: `layer-${DIGEST}`, offset: 42, total: 100 }] });
    },
  });
  const images = loadProto<ImagesProto>('containerd/services/images/v1/images.proto').containerd.services.images.v1.Images;
  server.addService(images.service, {
    List: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      ns(call);
      cb(null, { images: [{ name: 'r/app:1', target: { media_type: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, size: 123 } }, { name: 'broken' }] });
    },
  });
  await new Promise<void>((resolve, reject) => server.bindAsync(`unix:${socket}`, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  const connection = new ContainerdConnection(socket);
  t.teardown(async () => {
    connection.close();
    server.forceShutdown();
    await rm(dir, { recursive: true, force: true });
  });
  return { connection, namespaces, dir };
}

test('every call names the namespace it serves; the answers arrive as the seams describe them', async (t) => {
  const { connection, namespaces } = await fakeContainerd(t);
  const content = new GrpcContentClient(connection);
  t.deepEqual(await content.info('k8s.io', DIGEST), { digest: DIGEST, size: BLOB.length });
  const chunks: Uint8Array[] = [];
  for await (const chunk of content.read('k8s.io', DIGEST)) chunks.push(chunk);
  t.true(Buffer.concat(chunks).equals(BLOB));
  t.deepEqual(await content.ingests('k8s.io'), [{ ref: `layer-${DIGEST}`, offset: 42 }]);
  t.deepEqual(await new GrpcImageClient(connection).list('default'), [
    { name: 'r/app:1', target: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: DIGEST, size: 123 } },
  ]);
  t.deepEqual(namespaces, ['k8s.io', 'k8s.io', 'k8s.io', 'default']);
});

test("containerd's NOT_FOUND: Info says absent, Read throws NotFoundError", async (t) => {
  const { connection } = await fakeContainerd(t);
  const content = new GrpcContentClient(connection);
  t.is(await content.info('other', DIGEST), undefined);
  await t.throwsAsync(
    (async () => {
      for await (const chunk of content.read('other', DIGEST)) void chunk;
    })(),
    { instanceOf: NotFoundError },
  );
});

test('no containerd at the address: UnavailableError naming the socket and the config key', async (t) => {
  const { dir } = await fakeContainerd(t);
  const connection = new ContainerdConnection(join(dir, 'absent.sock'), { timeoutMs: 2_000 });
  t.teardown(() => connection.close());
  const err = await t.throwsAsync(new GrpcImageClient(connection).list('k8s.io'), { instanceOf: UnavailableError });
  t.regex(err!.message, /absent\.sock did not answer images List/);
  t.regex(err!.hint!, /containerd_address/);
});
