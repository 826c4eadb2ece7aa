import test from 'ava';
import { link, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../../../snapshotter/core/errors.js';
import type { TarEntry, TarSink, TarXattr } from '../../../../snapshotter/layer/tar/entry.js';
import { feedDirectory, layerXattrs } from '../../../../snapshotter/service/layers/dir-source.js';

test('a tree becomes records: directories first, names in byte order, links and data', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upper-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'b'), { mode: 0o750 });
  await writeFile(join(root, 'b', 'file'), 'hello', { mode: 0o640 });
  await link(join(root, 'b', 'file'), join(root, 'a-link'));
  await writeFile(join(root, 'Z'), Buffer.alloc(3 << 20, 7));
  await symlink('b/file', join(root, 'sym'));
  await writeFile(join(root, 'empty'), '');
  execFileSync('mkfifo', [join(root, 'fifo')]);
  await writeFile(Buffer.concat([Buffer.from(join(root, 'latin-')), Buffer.from([0xff])]), 'x');

  const entries: TarEntry[] = [];
  const data = new Map<string, Buffer>();
  const sink: TarSink = {
    entry: (e) => entries.push(e),
    data: (chunk) => {
      const path = entries[entries.length - 1]!.path;
      data.set(path, Buffer.concat([data.get(path) ?? Buffer.alloc(0), chunk]));
    },
    end: () => t.fail('the walker does not end the stream; its caller does'),
  };
  const xattrs = new Map<string, TarXattr[]>([[join(root, 'b'), [{ name: 'user.k', value: Buffer.from('v') }]]]);
  const walk = await feedDirectory(root, sink, async (abs) => xattrs.get(abs.toString('latin1')) ?? []);

  t.deepEqual(
    entries.map((e) => [e.path, e.type]),
    [
      ['.', 'directory'],
      ['Z', 'file'],
      ['a-link', 'file'],
      ['b', 'directory'],
      ['b/file', 'hardlink'],
      ['empty', 'file'],
      ['fifo', 'fifo'],
      ['latin-\xff', 'file'],
      ['sym', 'symlink'],
    ],
  );
  const byPath = new Map(entries.map((e) => [e.path, e]));
  t.is(byPath.get('b')!.mode, 0o750);
  t.deepEqual(byPath.get('b')!.xattrs, [{ name: 'user.k', value: Buffer.from('v') }]);
  t.is(byPath.get('a-link')!.mode, 0o640);
  t.is(byPath.get('a-link')!.size, 5);
  t.is(byPath.get('b/file')!.linkTarget, 'a-link');
  t.is(byPath.get('b/file')!.size, 0);
  t.is(byPath.get('sym')!.linkTarget, 'b/file');
  t.is(data.get('a-link')!.toString(), 'hello');
  t.is(data.get('Z')!.length, 3 << 20);
  t.false(data.has('empty'));
  t.is(data.get('latin-\xff')!.toString(), 'x');
  t.is(walk.inodes, entries.length - 1, 'the hard link counts once');
});

test("overlay's private xattrs are dropped, opacity is kept", (t) => {
  const x = (name: string): TarXattr => ({ name, value: Buffer.from('y') });
  t.deepEqual(
    layerXattrs([x('trusted.overlay.opaque'), x('trusted.overlay.origin'), x('trusted.overlay.impure'), x('user.a'), x('security.capability'), x('trusted.other')]).map((a) => a.name),
    ['trusted.overlay.opaque', 'user.a', 'security.capability', 'trusted.other'],
  );
});

test('a file that shrinks while it is read fails the commit', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'upper-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await writeFile(join(root, 'f'), 'abcdef');
  const sink: TarSink = {
    // Truncated after its size was taken and before its data is read.
    entry: (e) => (e.path === 'f' ? truncateSync(join(root, 'f')) : undefined),
    data: () => undefined,
    end: () => undefined,
  };
  const err = await t.throwsAsync(feedDirectory(root, sink, async () => []), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, /"f" shrank from 6 to 0 bytes/);
});
