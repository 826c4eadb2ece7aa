/**
 * The tar reader's semantics, each checked against what erofs-utils 1.8.10
 * `tarerofs_parse_tar` does with the same bytes (facts from its lib/tar.c).
 */
import test from 'ava';
import { LayerFormatError } from '../../../../snapshotter/core/errors.js';
import type { TarEntry } from '../../../../snapshotter/layer/tar/entry.js';
import { parseTar, TarParser } from '../../../../snapshotter/layer/tar/reader.js';
import { parseChunks } from '../../../support/tar-events.js';
import {
  BLOCK, TarBuilder, base256, bytes, concat, gnuLongHeader, memberBlocks, opaqueMarker, padToBlock, paxHeader, paxRecord, tar, tarHeader,
  whiteout, writeChecksum,
} from '../../../support/tar-writer.js';

const entries = (archive: Uint8Array): TarEntry[] => parseChunks(archive).members.map((m) => m.entry);

test('every member type arrives with its header fields', (t) => {
  const archive = tar([
    { path: 'dir/', type: 'directory', mode: 0o2775, uid: 1, gid: 2, mtime: 100 },
    { path: 'dir/file', data: 'hello', mode: 0o4755, uid: 1000, gid: 1001, mtime: 101 },
    { path: 'dir/contiguous', typeflag: '7', data: 'c', mtime: 102 },
    { path: 'hard', type: 'hardlink', linkTarget: 'dir/file', mtime: 103 },
    { path: 'sym', type: 'symlink', linkTarget: '../x', mtime: 104 },
    { path: 'null', type: 'char', devMajor: 1, devMinor: 3, mode: 0o666 },
    { path: 'sda', type: 'block', devMajor: 8, devMinor: 0xfffff },
    { path: 'pipe', type: 'fifo', mode: 0o600 },
  ]);
  const got = parseChunks(archive).members;
  t.deepEqual(got.map(({ entry, data }) => [entry.path, entry.type, entry.mode, entry.uid, entry.gid, entry.mtime, entry.size,
    entry.linkTarget, entry.devMajor, entry.devMinor, data.toString()]), [
    ['dir', 'directory', 0o2775, 1, 2, 100, 0, undefined, 0, 0, ''],
    ['dir/file', 'file', 0o4755, 1000, 1001, 101, 5, undefined, 0, 0, 'hello'],
    ['dir/contiguous', 'file', 0o644, 0, 0, 102, 1, undefined, 0, 0, 'c'],
    ['hard', 'hardlink', 0o644, 0, 0, 103, 0, 'dir/file', 0, 0, ''],
    ['sym', 'symlink', 0o777, 0, 0, 104, 0, '../x', 0, 0, ''],
    ['null', 'char', 0o666, 0, 0, 0, 0, undefined, 1, 3, ''],
    ['sda', 'block', 0o600, 0, 0, 0, 0, undefined, 8, 0xfffff, ''],
    ['pipe', 'fifo', 0o600, 0, 0, 0, 0, undefined, 0, 0, ''],
  ]);
  t.deepEqual(got.map((m) => m.entry.offset), [0, 512, 1536, 2560, 3072, 3584, 4096, 4608]);
});

test('whiteout names pass through as plain members (the EROFS tree builder interprets them)', (t) => {
  const archive = tar([{ path: whiteout('etc/gone.conf'), mode: 0 }, { path: opaqueMarker('var/cache') }, { path: whiteout('top') }]);
  t.deepEqual(entries(archive).map((e) => [e.path, e.type]), [['etc/.wh.gone.conf', 'file'], ['var/cache/.wh..wh..opq', 'file'], ['.wh.top', 'file']]);
});

test('file data reaches the sink as views of the written chunk, not copies', (t) => {
  const archive = tar([{ path: 'a', data: 'x'.repeat(3000) }, { path: 'b', data: 'y'.repeat(10) }]);
  const views: Uint8Array[] = [];
  const parser = new TarParser({ entry: () => {}, data: (chunk) => views.push(chunk), end: () => {} });
  parser.write(archive);
  parser.end();
  t.deepEqual(views.map((v) => [v.buffer === archive.buffer, v.byteOffset, v.length]), [[true, 512, 3000], [true, 4096, 10]]);
});

test('the end marker is two zero blocks; bytes after it are ignored and counted', (t) => {
  const archive = tar([{ path: 'a', data: 'a' }], { trailing: bytes('garbage that is not a header'.repeat(40)) });
  const parser = new TarParser({ entry: () => {}, data: () => {}, end: () => {} });
  parser.write(archive);
  t.true(parser.finished);
  t.is(parser.offset, archive.length);
  t.notThrows(() => parser.end());
});

test('a single zero block between members is skipped, as 1.8.10 skips it', (t) => {
  const builder = new TarBuilder();
  builder.add({ path: 'a' });
  builder.raw(new Uint8Array(BLOCK));
  builder.add({ path: 'b' });
  t.deepEqual(entries(builder.finish()).map((e) => [e.path, e.offset]), [['a', 0], ['b', 1024]]);
});

test('a block with an empty name that is not a valid header counts as a zero block', (t) => {
  const builder = new TarBuilder();
  builder.add({ path: 'a' });
  const odd = new Uint8Array(BLOCK);
  odd.set(bytes('not a checksum'), 148);
  builder.raw(odd);
  builder.raw(new Uint8Array(BLOCK));
  builder.raw(bytes('ignored after the end'));
  t.deepEqual(entries(builder.finish({ endBlocks: 0 })).map((e) => e.path), ['a']);
});

test('a checksum that is the signed byte sum is accepted (old tars summed signed chars)', (t) => {
  const header = tarHeader({ name: Buffer.from('caf\xe9-\xff', 'latin1'), typeflag: '0' });
  const signed = header.reduce((sum, byte, i) => sum + (i >= 148 && i < 156 ? 0x20 : byte < 0x80 ? byte : byte - 256), 0);
  writeChecksum(header, signed);
  t.deepEqual(entries(concat([header, new Uint8Array(2 * BLOCK)])).map((e) => e.path), ['caf\xe9-\xff']);
});

test('the 12 bytes after the prefix are not part of the checksum', (t) => {
  const header = tarHeader({ name: 'a', typeflag: '0' });
  header.set(bytes('padding text'), 500);
  t.deepEqual(entries(concat([header, new Uint8Array(2 * BLOCK)])).map((e) => e.path), ['a']);
});

test('POSIX and GNU magic are both accepted; only "ustar" is compared', (t) => {
  const odd = tarHeader({ name: 'odd', typeflag: '0', magic: 'none' });
  odd.set(bytes('ustarX99'), 257);
  writeChecksum(odd);
  const archive = concat([memberBlocks({ path: 'posix' }), memberBlocks({ path: 'gnu', magic: 'gnu' }), odd, new Uint8Array(2 * BLOCK)]);
  t.deepEqual(entries(archive).map((e) => e.path), ['posix', 'gnu', 'odd']);
});

test('names: prefix and name joined with one slash, trailing slashes removed, empty name is "."', (t) => {
  const archive = concat([
    tarHeader({ name: 'c', prefix: 'a/b', typeflag: '0' }),
    tarHeader({ name: 'c', prefix: 'a/b/', typeflag: '0' }),
    tarHeader({ name: 'd//', prefix: 'a', typeflag: '5' }),
    tarHeader({ name: '', typeflag: '5' }),
    tarHeader({ name: '/', typeflag: '5' }),
    tarHeader({ name: './', typeflag: '5' }),
    new Uint8Array(2 * BLOCK),
  ]);
  t.deepEqual(entries(archive).map((e) => e.path), ['a/b/c', 'a/b/c', 'a/d', '.', '.', '.']);
});

test('GNU base-256 numbers for size, uid, gid and mtime', (t) => {
  const archive = tar([
    { path: 'big-ids', uid: 4_000_000_000, gid: 0xffffffff, mtime: 2 ** 40, data: 'x', base256: ['uid', 'gid', 'mtime', 'size'] },
    { path: 'before-1970', mtime: -86400, base256: ['mtime'] },
  ]);
  t.deepEqual(entries(archive).map((e) => [e.uid, e.gid, e.mtime, e.size]), [[4_000_000_000, 0xffffffff, 2 ** 40, 1], [0, 0, -86400, 0]]);
});

test('octal fields are read like strtoll: leading blanks, a sign, a space or NUL after the digits', (t) => {
  const at = (field: number, text: string): Uint8Array => {
    const header = tarHeader({ name: 'n', typeflag: '0' });
    header.set(new Uint8Array(8), field);
    header.set(bytes(text), field);
    writeChecksum(header);
    return concat([header, new Uint8Array(2 * BLOCK)]);
  };
  t.is(entries(at(100, '  755  '))[0]!.mode, 0o755);
  t.is(entries(at(100, '+644\0xyz'))[0]!.mode, 0o644);
  t.is(entries(at(100, '        '))[0]!.mode, 0);
  t.is(entries(at(100, '-1'))[0]!.mode, 0o7777);
  t.is(entries(at(108, '\t17 '))[0]!.uid, 0o17);
});

test('PAX records override path, linkpath, size, uid, gid and mtime; the mtime fraction is dropped', (t) => {
  const archive = tar([
    { path: 'short', type: 'symlink', pax: [['path', 'p'.repeat(300) + '//'], ['linkpath', 'l'.repeat(200)], ['uid', '4294967295'],
      ['gid', '  7'], ['mtime', '1600000000.987654321'], ['comment', 'ignored'], ['atime', '1.5']] },
    { path: 'sized', data: 'abc', pax: [['size', '3']] },
    { path: 'negative-time', paxMtime: '-5.5' },
  ]);
  t.deepEqual(entries(archive).map((e) => [e.path, e.linkTarget, e.uid, e.gid, e.mtime, e.size]), [
    ['p'.repeat(300), 'l'.repeat(200), 0xffffffff, 7, 1600000000, 0],
    ['sized', undefined, 0, 0, 0, 3],
    ['negative-time', undefined, 0, 0, -5, 0],
  ]);
});

test('extended and GNU headers apply to the next member only; several accumulate', (t) => {
  const builder = new TarBuilder();
  builder.raw(paxHeader([paxRecord('uid', '5'), paxRecord('SCHILY.xattr.user.a', '1')]));
  builder.raw(paxHeader([paxRecord('gid', '6')]));
  builder.raw(gnuLongHeader('L', 'from-gnu-L'));
  builder.raw(tarHeader({ name: 'header-name', typeflag: '0' }));
  builder.add({ path: 'plain' });
  const [first, second] = entries(builder.finish());
  t.deepEqual([first!.path, first!.uid, first!.gid, first!.xattrs.map((x) => x.name), first!.offset], ['from-gnu-L', 5, 6, ['user.a'], 0]);
  t.deepEqual([second!.path, second!.uid, second!.gid, second!.xattrs], ['plain', 0, 0, []]);
});

test('a PAX size also sizes the next extended header and the member, as in 1.8.10', (t) => {
  // 1.8.10 takes every header's size from the pending PAX size while it is set.
  const second = paxRecord('comment', 'x'.repeat(28));
  t.is(second.length, 40);
  const archive = concat([
    paxHeader([paxRecord('size', '40'), paxRecord('uid', '9')]),
    tarHeader({ name: 'PaxHeaders/2', typeflag: 'x', size: 999 }), padToBlock(second),
    tarHeader({ name: 'f', typeflag: '0', size: 0 }), padToBlock(new Uint8Array(40).fill(0x61)),
    new Uint8Array(2 * BLOCK),
  ]);
  t.deepEqual(parseChunks(archive).members.map((m) => [m.entry.path, m.entry.uid, m.entry.size, m.data.toString()]),
    [['f', 9, 40, 'a'.repeat(40)]]);
});

test('global headers: path and linkpath apply at once, numbers only from the next member on (1.8.10)', (t) => {
  const builder = new TarBuilder();
  builder.add({ path: 'before' });
  builder.global([['uid', '77'], ['linkpath', 'global-target']]);
  builder.add({ path: 'first-after', type: 'symlink', linkTarget: 'own-target' });
  builder.add({ path: 'second-after', type: 'hardlink', linkTarget: 'own-target' });
  builder.global([['path', 'everything/is/here/']]);
  builder.add({ path: 'renamed' });
  builder.add({ path: 'also-renamed', uid: 3 });
  t.deepEqual(entries(builder.finish()).map((e) => [e.path, e.uid, e.linkTarget]), [
    ['before', 0, undefined],
    ['first-after', 0, 'global-target'],
    ['second-after', 77, 'global-target'],
    ['everything/is/here', 77, undefined],
    ['everything/is/here', 77, undefined],
  ]);
});

test('xattr order: own records in first-seen order with the last value, then global ones not overridden', (t) => {
  const builder = new TarBuilder();
  builder.global([['SCHILY.xattr.user.g1', 'g1'], ['SCHILY.xattr.user.shared', 'global'], ['SCHILY.xattr.user.g2', 'g2']]);
  builder.add({ path: 'f', xattrs: [['user.b', '1'], ['user.shared', 'own'], ['user.a', '2'], ['user.b', '3']] });
  builder.global([['SCHILY.xattr.user.g1', 'changed'], ['SCHILY.xattr.user.g3', 'g3']]);
  builder.add({ path: 'g' });
  const [f, g] = entries(builder.finish());
  const pairs = (e: TarEntry | undefined): string[][] => e!.xattrs.map((x) => [x.name, Buffer.from(x.value).toString()]);
  t.deepEqual(pairs(f), [['user.b', '3'], ['user.shared', 'own'], ['user.a', '2'], ['user.g1', 'g1'], ['user.g2', 'g2']]);
  t.deepEqual(pairs(g), [['user.g1', 'changed'], ['user.shared', 'global'], ['user.g2', 'g2'], ['user.g3', 'g3']]);
});

test('xattr values keep every byte; empty names are dropped as 1.8.10 drops them', (t) => {
  const value = Uint8Array.from([0, 0x0a, 0x3d, 0xff, 0x20]);
  const [entry] = entries(tar([{ path: 'f', xattrs: [['user.bin', value], ['', 'no name'], ['security.capability', '']] }]));
  t.deepEqual(entry!.xattrs.map((x) => [x.name, [...x.value]]), [['user.bin', [...value]], ['security.capability', []]]);
});

test('LIBARCHIVE.xattr: names are URL-decoded and values decoded with 1.8.10\'s base64 bit order', (t) => {
  const [entry] = entries(tar([{ path: 'f', pax: [
    ['LIBARCHIVE.xattr.user.with%20space%zz', 'AQID'],
    ['LIBARCHIVE.xattr.user.zeros', 'AAAA'],
    ['LIBARCHIVE.xattr.user.unpadded', 'QQ'],
    ['LIBARCHIVE.xattr.user.empty', ''],
  ] }]));
  t.deepEqual(entry!.xattrs.map((x) => [x.name, [...x.value]]), [
    ['user.with space%zz', [0, 132, 12]], // standard base64 would give 01 02 03
    ['user.zeros', [0, 0, 0]],
    ['user.unpadded', [16, 4]],
    ['user.empty', []],
  ]);
});

test('GNU long names are kept as 1.8.10 keeps them: cut at the NUL, trailing slashes kept', (t) => {
  const builder = new TarBuilder();
  builder.raw(gnuLongHeader('L', 'long/dir/'));
  builder.raw(tarHeader({ name: 'ignored', typeflag: '5' }));
  builder.raw(gnuLongHeader('L', concat([bytes('cut'), new Uint8Array(1), bytes('away')])));
  builder.raw(gnuLongHeader('K', 'k-target'));
  builder.raw(tarHeader({ name: 'ignored', typeflag: '1', linkname: 'ignored-too' }));
  t.deepEqual(entries(builder.finish()).map((e) => [e.path, e.linkTarget]), [['long/dir/', undefined], ['cut', 'k-target']]);
});

test('unknown member types are skipped with their data and a warning, as 1.8.10 skips them', (t) => {
  const builder = new TarBuilder();
  builder.add({ path: 'v7-regular-file', typeflag: '\0' });
  const skipped = builder.raw(concat([tarHeader({ name: 'dumpdir', typeflag: 'D', size: 600 }), padToBlock(new Uint8Array(600).fill(0x41))]));
  builder.add({ path: 'kept', data: 'k' });
  const result = parseChunks(builder.finish());
  t.deepEqual(result.members.map((m) => [m.entry.path, m.data.toString()]), [['kept', 'k']]);
  t.deepEqual(result.warnings.map((w) => [w.entry, w.offset]), [['v7-regular-file', 0], ['dumpdir', skipped]]);
  t.regex(result.warnings[1]!.message, /unsupported type "D"/);
});

test('a GNU volume header gives its label and is not a member; it needs no magic', (t) => {
  const builder = new TarBuilder();
  builder.volume('first label');
  const bare = tarHeader({ name: 'a-label-longer-than-16-bytes', typeflag: 'V', magic: 'none', size: 0 });
  bare.fill(0, 124, 136);
  writeChecksum(bare);
  builder.raw(bare);
  builder.add({ path: 'member' });
  const result = parseChunks(builder.finish());
  t.deepEqual(result.volumeLabels.map((l) => l.toString('latin1')), ['first label\0\0\0\0\0', 'a-label-longer-t']);
  t.deepEqual(result.members.map((m) => [m.entry.path, m.entry.offset]), [['member', 1024]]);
  t.deepEqual(result.warnings, []);
});

test('a volume header\'s size is not skipped (1.8.10 expects none) and is warned about', (t) => {
  const builder = new TarBuilder();
  builder.raw(tarHeader({ name: 'label', typeflag: 'V', size: 512 }));
  builder.add({ path: 'right-after' });
  const result = parseChunks(builder.finish());
  t.deepEqual(result.members.map((m) => m.entry.path), ['right-after']);
  t.deepEqual(result.warnings.map((w) => [w.offset, /volume header/.test(w.message)]), [[0, true]]);
});

test('file type bits in the mode field are dropped with a warning when they disagree', (t) => {
  const result = parseChunks(tar([{ path: 'f', mode: 0o40755 }, { path: 'd', type: 'directory', mode: 0o40700 }]));
  t.deepEqual(result.members.map((m) => m.entry.mode), [0o755, 0o700]);
  t.deepEqual(result.warnings.map((w) => w.entry), ['f']);
});

test('parseTar feeds an async stream and ends the sink', async (t) => {
  const archive = tar([{ path: 'a', data: 'abc' }]);
  const events: string[] = [];
  async function* chunks(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < archive.length; i += 100) yield archive.subarray(i, i + 100);
  }
  await parseTar(chunks(), {
    entry: (e) => events.push(`entry ${e.path}`),
    data: (c) => events.push(`data ${Buffer.from(c).toString()}`),
    end: () => events.push('end'),
  });
  t.deepEqual(events, ['entry a', 'data abc', 'end']);
});

test('a parser that failed keeps failing with the same error; one that ended refuses more input', (t) => {
  const parser = new TarParser({ entry: () => {}, data: () => {}, end: () => {} });
  const bad = tar([{ path: 'x', badChecksum: true }]);
  const first = t.throws(() => parser.write(bad), { instanceOf: LayerFormatError });
  t.is(t.throws(() => parser.write(new Uint8Array(1))), first);
  const done = new TarParser({ entry: () => {}, data: () => {}, end: () => {} });
  done.write(tar([]));
  done.end();
  t.throws(() => done.end(), { message: /after end/ });
});

test('an error thrown by the sink stops the parser and passes through unchanged', (t) => {
  const failure = new LayerFormatError('unsafe path');
  const parser = new TarParser({ entry: () => { throw failure; }, data: () => {}, end: () => {} });
  t.is(t.throws(() => parser.write(tar([{ path: '../x' }]))), failure);
});

test('base256 helper and reader agree on negative values', (t) => {
  t.deepEqual([...base256(-1, 4)], [0xff, 0xff, 0xff, 0xff]);
});
