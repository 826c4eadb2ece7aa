import test from 'ava';
import { execFileSync } from 'node:child_process';
import type { TarEntry, TarSink } from '../../../snapshotter/layer/tar/entry.js';
import { parseTar } from '../../../snapshotter/layer/tar/reader.js';
import { TAR_END, tarHeader, tarPadding, type TarMember } from '../../../snapshotter/oci/tar-writer.js';

async function parse(tar: Buffer): Promise<{ entry: TarEntry; data: Buffer }[]> {
  const out: { entry: TarEntry; data: Buffer }[] = [];
  const sink: TarSink = {
    entry: (entry) => out.push({ entry, data: Buffer.alloc(0) }),
    data: (chunk) => { const last = out[out.length - 1]!; last.data = Buffer.concat([last.data, chunk]); },
    end: () => {},
  };
  await parseTar((async function* () { yield tar; })(), sink);
  return out;
}

function archive(members: [TarMember, Buffer?][]): Buffer {
  return Buffer.concat([
    ...members.flatMap(([m, data]) => (data ? [tarHeader(m), data, tarPadding(data.length)] : [tarHeader(m)])),
    TAR_END,
  ]);
}

const base: TarMember = { path: 'f', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1700000000, size: 0, linkTarget: undefined, devMajor: 0, devMinor: 0, xattrs: [] };

test('members round trip through our tar parser, with pax records where ustar cannot hold them', async (t) => {
  const longPath = `${'d'.repeat(80)}/${'f'.repeat(80)}`;
  const longLink = `/${'l'.repeat(150)}`;
  const binary = Buffer.from([0, 1, 2, 0xff, 0x0a]);
  const members: [TarMember, Buffer?][] = [
    [{ ...base, path: 'dir', type: 'directory', mode: 0o755 }],
    [{ ...base, path: longPath, size: 5, uid: 3000000, gid: 7, mode: 0o4755 }, Buffer.from('hello')],
    [{ ...base, path: 'link', type: 'symlink', mode: 0o777, linkTarget: longLink }],
    [{ ...base, path: 'hard', type: 'hardlink', linkTarget: longPath }],
    [{ ...base, path: 'dev', type: 'char', devMajor: 1, devMinor: 3 }],
    [{ ...base, path: 'x', size: 1, xattrs: [{ name: 'user.b', value: binary }, { name: 'security.capability', value: Buffer.from('cap') }] }, Buffer.from('1')],
  ];
  const parsed = await parse(archive(members));
  t.deepEqual(parsed.map((p) => [p.entry.path, p.entry.type, p.entry.mode, p.entry.uid, p.entry.gid, p.entry.linkTarget ?? null, p.data.toString('latin1')]), [
    ['dir', 'directory', 0o755, 0, 0, null, ''],
    [longPath, 'file', 0o4755, 3000000, 7, null, 'hello'],
    ['link', 'symlink', 0o777, 0, 0, longLink, ''],
    ['hard', 'hardlink', 0o644, 0, 0, longPath, ''],
    ['dev', 'char', 0o644, 0, 0, null, ''],
    ['x', 'file', 0o644, 0, 0, null, '1'],
  ]);
  t.deepEqual([parsed[4]!.entry.devMajor, parsed[4]!.entry.devMinor], [1, 3]);
  // Records are written sorted by key, as Go's archive/tar writes them.
  t.deepEqual(parsed[5]!.entry.xattrs.map((x) => [x.name, Buffer.from(x.value).toString('hex')]), [
    ['security.capability', Buffer.from('cap').toString('hex')],
    ['user.b', binary.toString('hex')],
  ]);
});

test('GNU tar reads what we write (an independent reader)', (t) => {
  const longPath = `${'p'.repeat(120)}/file`;
  const tar = archive([
    [{ ...base, path: 'a', type: 'directory', mode: 0o755 }],
    [{ ...base, path: longPath, size: 3 }, Buffer.from('abc')],
  ]);
  const listing = execFileSync('tar', ['-tf', '-'], { input: tar }).toString().split('\n').filter(Boolean);
  t.deepEqual(listing, ['a', longPath]); // directories without a trailing slash, as Go writes them
  t.is(execFileSync('tar', ['-xOf', '-', longPath], { input: tar }).toString(), 'abc');
});

test('pax record lengths count their own digits', (t) => {
  // A record whose length crosses a digit boundary (99 → 100) must still be exact.
  for (let n = 80; n < 100; n++) {
    const header = tarHeader({ ...base, xattrs: [{ name: 'user.k', value: Buffer.alloc(n, 0x61) }] });
    const body = header.subarray(512, 1024).toString('latin1');
    const length = Number(body.slice(0, body.indexOf(' ')));
    t.is(body.slice(0, length).at(-1), '\n', `value length ${n}`);
    t.is(Buffer.byteLength(body.slice(0, length), 'latin1'), length);
  }
});
