/**
 * The registry client against real HTTP servers in the test process
 * (test/support/blob-server.ts): endpoints from a hosts directory, the
 * anonymous token protocol, redirects, and every way a fetch can fail.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { RegistryClient, type RegistryClientOptions } from '../../../../snapshotter/service/registry/client.js';
import { RegistryFetchError } from '../../../../snapshotter/service/registry/errors.js';
import { BlobServer } from '../../../support/blob-server.js';
import { HttpProxy } from '../../../support/http-proxy.js';
import { issue } from '../../../support/pki.js';

const BLOB = Buffer.from('a layer blob, gzip in real life\n'.repeat(1000));
const REF = 'registry.test/team/app:1';

async function servers(t: ExecutionContext, count: number): Promise<BlobServer[]> {
  const started = await Promise.all(Array.from({ length: count }, () => BlobServer.start()));
  t.teardown(() => Promise.all(started.map((s) => s.stop())));
  return started;
}

/**
 * A client whose hosts directory sends registry.test to `endpoints`, in
 * order; `ca` is every endpoint's CA file. The environment is the test's own
 * (`env`, default: none), never the machine's proxy settings.
 */
async function client(t: ExecutionContext, endpoints: string[], options: Partial<RegistryClientOptions> & { ca?: string } = {}): Promise<RegistryClient> {
  const dir = await mkdtemp(join(tmpdir(), 'hosts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'registry.test'));
  const { ca, ...rest } = options;
  if (ca) await writeFile(join(dir, 'registry.test', 'ca.pem'), ca);
  const caLine = ca ? ['ca = "ca.pem"'] : [];
  const [server, ...mirrors] = [...endpoints].reverse();
  const text = [`server = "${server}"`, ...caLine, ...mirrors.reverse().flatMap((m) => [`[host."${m}"]`, ...caLine])].join('\n');
  await writeFile(join(dir, 'registry.test', 'hosts.toml'), text);
  return new RegistryClient({ hostsDir: dir, logger: silentLogger, env: {}, ...rest });
}

/** A registry over HTTPS whose certificate (for 127.0.0.1) a fresh CA signed; the CA's PEM. */
async function tlsRegistry(t: ExecutionContext): Promise<{ registry: BlobServer; ca: string }> {
  const root = await issue({ subject: 'CN=Test Registry CA', ca: true });
  const leaf = await issue({ subject: 'CN=127.0.0.1', issuer: root, altNames: [{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: PROXIED }] });
  const registry = await BlobServer.start({ tls: { key: leaf.keyPem, cert: leaf.certPem } });
  t.teardown(() => registry.stop());
  return { registry, ca: root.certPem };
}

/** A name for the test's registries on loopback that the proxy resolves to 127.0.0.1 (loopback itself is never proxied). */
const PROXIED = 'registry.internal';

async function proxy(t: ExecutionContext): Promise<HttpProxy> {
  const started = await HttpProxy.start();
  t.teardown(() => started.stop());
  started.resolveTo = '127.0.0.1';
  return started;
}

async function readAll(body: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

test('a blob from the endpoint the hosts file names, which is told the repository\'s registry', async (t) => {
  const [registry] = await servers(t, 1);
  const digest = registry!.add(BLOB);
  const c = await client(t, [registry!.url]);
  t.deepEqual(await readAll(await c.openBlob(REF, digest)), BLOB);
  t.deepEqual(registry!.requests, [{ path: `/v2/team/app/blobs/${digest}`, query: { ns: 'registry.test' }, authorization: undefined }]);
});

test('a bearer challenge: an anonymous token from the realm, with the service and scope it names, kept for the next blob', async (t) => {
  const [registry] = await servers(t, 1);
  registry!.behaviour = { token: 'T0KEN' };
  const digest = registry!.add(BLOB);
  const other = registry!.add(Buffer.from('another blob'));
  const c = await client(t, [registry!.url]);
  t.deepEqual(await readAll(await c.openBlob(REF, digest)), BLOB);
  t.deepEqual(await readAll(await c.openBlob(REF, other)), Buffer.from('another blob'));
  t.deepEqual(registry!.requests.map((r) => [r.path, r.authorization]), [
    [`/v2/team/app/blobs/${digest}`, undefined],
    ['/token', undefined],
    [`/v2/team/app/blobs/${digest}`, 'Bearer T0KEN'],
    [`/v2/team/app/blobs/${other}`, 'Bearer T0KEN'],
  ]);
  t.deepEqual(registry!.requests[1]!.query, { service: 'test-registry', scope: 'repository:team/app:pull' });
});

test('a redirect to blob storage is followed, without the token', async (t) => {
  const [registry, storage] = await servers(t, 2);
  registry!.behaviour = { token: 'T0KEN', redirectTo: storage!.url };
  const digest = storage!.add(BLOB);
  const c = await client(t, [registry!.url]);
  t.deepEqual(await readAll(await c.openBlob(REF, digest)), BLOB);
  t.deepEqual(storage!.requests.map((r) => r.authorization), [undefined]);
});

test('endpoints are tried in order: a mirror without the blob, then the next', async (t) => {
  const [mirror, registry] = await servers(t, 2);
  const digest = registry!.add(BLOB);
  const c = await client(t, [mirror!.url, registry!.url]);
  t.deepEqual(await readAll(await c.openBlob(REF, digest)), BLOB);
  t.is(mirror!.requests.length, 1);
});

test('no endpoint serves it: a RegistryFetchError naming each, and the registry is not asked again until the back-off is over', async (t) => {
  const [mirror, registry] = await servers(t, 2);
  mirror!.behaviour = { status: 500 };
  registry!.behaviour = { status: 403 };
  const c = await client(t, [mirror!.url, registry!.url], { backoffMs: 150 });
  const digest = registry!.add(BLOB);
  const err = await t.throwsAsync(c.openBlob(REF, digest), { instanceOf: RegistryFetchError });
  t.regex(err!.message, new RegExp(`${mirror!.url}: HTTP 500.*${registry!.url}: HTTP 403`));
  t.false(c.mayFetch(REF));
  t.true(c.mayFetch('other.test/app:1'), 'per registry');
  await sleep(200);
  t.true(c.mayFetch(REF));
});

test('a registry that wants a password: refused at once, no credentials are sent', async (t) => {
  const [registry] = await servers(t, 1);
  registry!.behaviour = { status: 401 };
  const c = await client(t, [registry!.url]);
  await t.throwsAsync(c.openBlob(REF, registry!.add(BLOB)), { instanceOf: RegistryFetchError, message: /wants credentials/ });
});

test('an endpoint that does not answer is given up after the answer timeout', async (t) => {
  const [registry] = await servers(t, 1);
  registry!.behaviour = { silent: true };
  const c = await client(t, [registry!.url], { answerTimeoutMs: 150 });
  const started = Date.now();
  await t.throwsAsync(c.openBlob(REF, registry!.add(BLOB)), { instanceOf: RegistryFetchError, message: /no answer from .* within 0\.15 s/ });
  t.true(Date.now() - started < 5_000);
});

test('a body cut short is a RegistryFetchError while it is read', async (t) => {
  const [registry] = await servers(t, 1);
  registry!.behaviour = { cutAfter: 100 };
  const c = await client(t, [registry!.url]);
  const body = await c.openBlob(REF, registry!.add(BLOB));
  await t.throwsAsync(readAll(body), { instanceOf: RegistryFetchError, message: /reading sha256:.* failed/ });
  t.false(c.mayFetch(REF), 'a registry that breaks off is in its back-off too');
});

test('a reference that names no repository is refused before anything is asked', async (t) => {
  const c = await client(t, ['http://127.0.0.1:1']);
  await t.throwsAsync(c.openBlob('registry.test/', `sha256:${'0'.repeat(64)}`), { instanceOf: RegistryFetchError, message: /is not an image reference/ });
  t.false(c.mayFetch('registry.test/'));
});

test("HTTPS: the hosts file's CA is trusted; without it the certificate is refused", async (t) => {
  const { registry, ca } = await tlsRegistry(t);
  const digest = registry.add(BLOB);
  t.deepEqual(await readAll(await (await client(t, [registry.url], { ca })).openBlob(REF, digest)), BLOB);
  await t.throwsAsync((await client(t, [registry.url])).openBlob(REF, digest), { instanceOf: RegistryFetchError, message: /certificate/ });
});

test('HTTPS_PROXY: a CONNECT tunnel with the proxy credentials; the registry gets the token, the proxy never sees it', async (t) => {
  const { registry, ca } = await tlsRegistry(t);
  registry.behaviour = { token: 'T0KEN' };
  const digest = registry.add(BLOB);
  const egress = await proxy(t);
  const url = registry.url.replace('127.0.0.1', PROXIED);
  const c = await client(t, [url], { ca, env: { HTTPS_PROXY: egress.url.replace('http://', 'http://user:p%40ss@') } });
  t.deepEqual(await readAll(await c.openBlob(REF, digest)), BLOB);
  t.true(egress.requests.length > 0 && egress.requests.every((r) => r.method === 'CONNECT' && r.target === new URL(url).host));
  t.true(egress.requests.every((r) => r.proxyAuthorization === `Basic ${Buffer.from('user:p@ss').toString('base64')}` && r.authorization === undefined));
  t.true(registry.requests.some((r) => r.authorization === 'Bearer T0KEN'));
});

test('HTTP_PROXY: an http registry is asked through the proxy with the whole URL', async (t) => {
  const [registry] = await servers(t, 1);
  const digest = registry!.add(BLOB);
  const egress = await proxy(t);
  const url = registry!.url.replace('127.0.0.1', PROXIED);
  const c = await client(t, [url], { env: { HTTP_PROXY: egress.url, HTTPS_PROXY: 'http://127.0.0.1:1' } });
  t.deepEqual(await readAll(await c.openBlob(REF, digest)), BLOB);
  t.deepEqual(egress.requests.map((r) => `${r.method} ${r.target}`), [`GET ${url}/v2/team/app/blobs/${digest}?ns=registry.test`]);
});

test('a proxy that refuses the tunnel is a RegistryFetchError naming it', async (t) => {
  const egress = await proxy(t);
  egress.resolveTo = '127.0.0.2';
  const c = await client(t, [`https://${PROXIED}:1`], { env: { HTTPS_PROXY: egress.url } });
  await t.throwsAsync(c.openBlob(REF, `sha256:${'0'.repeat(64)}`), { instanceOf: RegistryFetchError, message: /proxy http:\/\/127\.0\.0\.1:\d+ refused a tunnel to registry\.internal:1: HTTP 502|socket hang up|ECONN/ });
});
