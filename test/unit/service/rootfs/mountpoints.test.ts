import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MOUNTPOINT_DIRS, DEFAULT_MOUNTPOINT_FILES } from '../../../../snapshotter/core/config.js';
import { buildMountpointsLayer, mountpointEntries } from '../../../../snapshotter/service/rootfs/mountpoints.js';

test('the records: root, parents first, listed dirs 0755 and empty files 0644, owned by root', (t) => {
  const entries = mountpointEntries({ dirs: ['/var/run/secrets/x', '/proc'], files: ['/etc/hosts'] });
  t.deepEqual(
    entries.map((e) => [e.path, e.type, e.mode.toString(8)]),
    [
      ['.', 'directory', '755'],
      ['etc', 'directory', '755'],
      ['etc/hosts', 'file', '644'],
      ['proc', 'directory', '755'],
      ['var', 'directory', '755'],
      ['var/run', 'directory', '755'],
      ['var/run/secrets', 'directory', '755'],
      ['var/run/secrets/x', 'directory', '755'],
    ],
  );
  t.true(entries.every((e) => e.uid === 0 && e.gid === 0 && e.size === 0));
});

test('the same configuration builds the same bytes; another one builds others', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mountpoints-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const spec = { dirs: DEFAULT_MOUNTPOINT_DIRS, files: DEFAULT_MOUNTPOINT_FILES };
  const dirs = await Promise.all(['a', 'b', 'c'].map((n) => mkdtemp(join(dir, n))));
  const [a, b, c] = await Promise.all([
    buildMountpointsLayer(spec, dirs[0]!),
    buildMountpointsLayer(spec, dirs[1]!),
    buildMountpointsLayer({ ...spec, files: [...spec.files, '/etc/extra'] }, dirs[2]!),
  ]);
  t.is(a.sha256, b.sha256);
  t.is(a.rootHash, b.rootHash);
  t.not(a.sha256, c.sha256);
  t.is(a.inodes, mountpointEntries(spec).length);
});
