import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError } from '../../../snapshotter/core/errors.js';
import {
  DEFAULT_CONTAINERD_ADDRESS,
  DEFAULT_MOUNTPOINT_DIRS,
  DEFAULT_MOUNTPOINT_FILES,
  loadSnapshotterConfig,
  parseSnapshotterConfig,
  type ConfigOverrides,
} from '../../../snapshotter/core/config.js';

/** [rootfs] when the file says nothing (test/unit/core/config-rootfs.test.ts checks the table itself). */
const DEFAULT_ROOTFS = { readOnly: 'protected', protectedImages: [], mountpointDirs: DEFAULT_MOUNTPOINT_DIRS, mountpointFiles: DEFAULT_MOUNTPOINT_FILES };
/** [signatures] when the file says nothing (test/unit/core/config-signatures.test.ts checks the table itself). */
const DEFAULT_SIGNATURES = { requiredImages: [], trustDirs: undefined };
const DEFAULT_REGISTRY = { fetchLayers: true, configPath: '/etc/containerd/certs.d' };

test('defaults for everything', (t) => {
  const config = loadSnapshotterConfig(undefined);
  t.deepEqual(config, {
    root: '/var/lib/containerd-integrity',
    address: '/run/containerd-integrity/snapshotter.sock',
    log: { level: 'info' },
    mounts: { dir: '/var/lib/containerd-integrity/m', backing: 'auto', idleSeconds: 30 },
    verity: 'auto',
    unpack: { memoryMib: 512 },
    registry: DEFAULT_REGISTRY,
    status: { intervalSeconds: 60 },
    metrics: { address: '' },
    containerdAddress: DEFAULT_CONTAINERD_ADDRESS,
    rootfs: DEFAULT_ROOTFS,
    signatures: DEFAULT_SIGNATURES,
  });
  t.true(Object.isFrozen(config));
  t.true(Object.isFrozen(config.mounts));
});

test('a full file is read, and the mount dir follows the root', (t) => {
  const config = parseSnapshotterConfig(
    'root = "/srv/ci/"\naddress = "/run/ci.sock"\n[log]\nlevel = "debug"\n[mounts]\nbacking = "loop"\nidle_seconds = 5\n',
    'test.toml',
  );
  t.deepEqual(config, {
    root: '/srv/ci',
    address: '/run/ci.sock',
    log: { level: 'debug' },
    mounts: { dir: '/srv/ci/m', backing: 'loop', idleSeconds: 5 },
    verity: 'auto',
    unpack: { memoryMib: 512 },
    registry: DEFAULT_REGISTRY,
    status: { intervalSeconds: 60 },
    metrics: { address: '' },
    containerdAddress: DEFAULT_CONTAINERD_ADDRESS,
    rootfs: DEFAULT_ROOTFS,
    signatures: DEFAULT_SIGNATURES,
  });
});

test('[registry]: fetching can be switched off and the hosts directory moved', (t) => {
  const config = parseSnapshotterConfig('[registry]\nfetch_layers = false\nconfig_path = "/etc/k8s/certs.d/"', 'f.toml');
  t.deepEqual(config.registry, { fetchLayers: false, configPath: '/etc/k8s/certs.d' });
});

test('flags win over the file and are resolved from the working directory', (t) => {
  const config = parseSnapshotterConfig('root = "/srv/a"\naddress = "/run/a.sock"', 'f.toml', { root: 'rel/root', address: '/run/b.sock' });
  t.is(config.root, resolve('rel/root'));
  t.is(config.mounts.dir, join(resolve('rel/root'), 'm'));
  t.is(config.address, '/run/b.sock');
});

const refused: Array<[string, string, RegExp, ConfigOverrides?]> = [
  ['unknown top-level key', 'rooot = "/x"', /f\.toml: unknown key rooot/],
  ['unknown key in a table', '[mounts]\nbackin = "loop"', /unknown key mounts\.backin/],
  ['unknown table', '[mount]\ndir = "/m"', /unknown key mount$/],
  ['wrong type', 'root = 3', /root must be a string, not 3/],
  ['wrong type under a flag', 'root = 3', /root must be a string/, { root: '/r' }],
  ['table expected', 'log = "debug"', /log must be a table/],
  ['relative path', 'root = "var/lib/x"', /root = "var\/lib\/x" is not an absolute path/],
  ['bad enum', '[mounts]\nbacking = "nfs"', /mounts\.backing = "nfs" is not one of "auto", "loop", "file"/],
  ['bad level', '[log]\nlevel = "loud"', /log\.level = "loud"/],
  ['mount dir inside the snapshots dir', 'root = "/r"\n[mounts]\ndir = "/r/snapshots/m"', /mounts\.dir \/r\/snapshots\/m is inside \/r\/snapshots/],
  ['socket under the mount dir', '[mounts]\ndir = "/m"\n', /address \/m\/x\/s\.sock is inside mounts\.dir \/m/, { address: '/m/x/s.sock' }],
  ['socket inside the snapshots dir', 'root = "/r"\naddress = "/r/snapshots/s.sock"', /address \/r\/snapshots\/s\.sock is inside/],
  ['TOML syntax', 'root = \n', /f\.toml:1:\d+: /],
  ['a quoted boolean', '[registry]\nfetch_layers = "no"', /registry\.fetch_layers = "no" is not true or false/],
  ['a relative hosts directory', '[registry]\nconfig_path = "certs.d"', /registry\.config_path = "certs\.d" is not an absolute path/],
];

for (const [title, text, message, overrides] of refused) {
  test(`refused: ${title}`, (t) => {
    const err = t.throws(() => parseSnapshotterConfig(text, 'f.toml', overrides), { instanceOf: ConfigError });
    t.regex(err!.message, message);
    t.regex(err!.hint ?? '', /\S/);
  });
}

test('a missing file is a ConfigError that names it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.throws(() => loadSnapshotterConfig(join(dir, 'nope.toml')), { instanceOf: ConfigError, message: /nope\.toml/ });
  writeFileSync(join(dir, 'ok.toml'), '[log]\nlevel = "warn"\n');
  t.is(loadSnapshotterConfig(join(dir, 'ok.toml')).log.level, 'warn');
});
