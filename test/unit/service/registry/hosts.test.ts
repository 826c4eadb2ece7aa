import test from 'ava';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryConfigError } from '../../../../snapshotter/service/registry/errors.js';
import { registryEndpoints } from '../../../../snapshotter/service/registry/hosts.js';

async function hostsDir(t: { teardown(fn: () => Promise<void>): void }, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'hosts-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
  return dir;
}

const apis = async (dir: string | undefined, host: string) => (await registryEndpoints(dir, host)).map((e) => e.api.href);

test('no hosts file: the registry itself over HTTPS; Docker Hub under its API host', async (t) => {
  const dir = await hostsDir(t, {});
  t.deepEqual(await apis(dir, 'registry.example:5000'), ['https://registry.example:5000/v2']);
  t.deepEqual(await apis(dir, 'docker.io'), ['https://registry-1.docker.io/v2']);
  t.deepEqual(await apis(undefined, 'quay.io'), ['https://quay.io/v2'], 'no hosts directory configured');
  t.deepEqual(await apis(join(dir, 'missing'), 'quay.io'), ['https://quay.io/v2'], 'a hosts directory that does not exist');
});

test('[host] tables in the order written, then server; only hosts that can pull; /v2 appended unless there or overridden', async (t) => {
  const dir = await hostsDir(t, {
    'registry.example/hosts.toml': [
      'server = "https://registry.example"',
      '[host."https://mirror-b.example"]',
      'capabilities = ["pull", "resolve"]',
      '[host."push-only.example"]',
      'capabilities = ["push"]',
      '[host."http://mirror-a.example:8080/cache/"]',
      '[host."https://proxy.example/api/raw"]',
      'override_path = true',
      '[host."https://already.example/x/v2"]',
    ].join('\n'),
  });
  t.deepEqual(await apis(dir, 'registry.example'), [
    'https://mirror-b.example/v2',
    'http://mirror-a.example:8080/cache/v2',
    'https://proxy.example/api/raw',
    'https://already.example/x/v2',
    'https://registry.example/v2',
  ]);
});

test('_default serves hosts without their own file; a server that cannot pull is left out', async (t) => {
  const dir = await hostsDir(t, {
    '_default/hosts.toml': 'server = "https://fallback.example"\ncapabilities = ["resolve"]\n[host."https://cache.example"]\n',
  });
  t.deepEqual(await apis(dir, 'anything.example'), ['https://cache.example/v2']);
});

test('ca files (relative to the host directory), skip_verify and headers are kept per host', async (t) => {
  const dir = await hostsDir(t, {
    'r.example/hosts.toml': [
      'server = "https://r.example"',
      'ca = "/nonexistent-is-not-read-for-this-host"',
      'capabilities = ["resolve"]',
      '[host."https://mirror.example"]',
      'ca = ["ca.pem"]',
      'skip_verify = true',
      'header = { "x-a" = "1", "x-b" = ["2", "3"] }',
    ].join('\n'),
    'r.example/ca.pem': '-----BEGIN CERTIFICATE-----\n',
  });
  // The server cannot pull, so its ca is never read.
  const [mirror, ...rest] = await registryEndpoints(dir, 'r.example');
  t.deepEqual(rest, []);
  t.deepEqual(mirror!.ca, ['-----BEGIN CERTIFICATE-----\n']);
  t.true(mirror!.skipVerify);
  t.deepEqual(mirror!.headers, { 'x-a': '1', 'x-b': ['2', '3'] });
});

const broken: Array<[string, string, RegExp]> = [
  ['bad TOML', 'server = ', /hosts\.toml is not valid TOML/],
  ['server not a string', 'server = 3', /"server" must be a string URL/],
  ['capabilities not an array', '[host."https://m.example"]\ncapabilities = "pull"', /capabilities of https:\/\/m\.example must be an array/],
  ['a CA file that is missing', '[host."https://m.example"]\nca = "missing.pem"', /cannot read CA certificate .*missing\.pem/],
  ['a header of the wrong type', '[host."https://m.example"]\nheader = { a = 1 }', /header of https:\/\/m\.example must map names/],
  ['not a URL', '[host."https://"]', /"https:\/\/" is not a registry URL/],
];

for (const [title, text, message] of broken) {
  test(`a hosts file the snapshotter cannot use is a RegistryConfigError: ${title}`, async (t) => {
    const dir = await hostsDir(t, { 'r.example/hosts.toml': text });
    await t.throwsAsync(registryEndpoints(dir, 'r.example'), { instanceOf: RegistryConfigError, message });
  });
}
