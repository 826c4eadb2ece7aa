/** The builder as a TarSink: determinism, chunking, streaming order, superblock, misuse. */
import test from 'ava';
import { createHash } from 'node:crypto';
import { FailedPreconditionError, LayerFormatError } from '../../../../snapshotter/core/errors.js';
import { crc32c } from '../../../../snapshotter/layer/erofs/checksum.js';
import { SUPER_BLOCK } from '../../../../snapshotter/layer/erofs/format.js';
import { DELIVERY_KIT_BUILD_TIME, ErofsBuilder } from '../../../../snapshotter/layer/erofs/writer.js';
import { DataSpill } from '../../../../snapshotter/layer/spill.js';
import { TarParser } from '../../../../snapshotter/layer/tar/reader.js';
import { buildErofs, buildErofsFromEntries, tarEntry } from '../../../support/erofs-build.js';
import { tar } from '../../../support/tar-writer.js';

const sample = tar([
  { path: 'etc', type: 'directory' },
  { path: 'etc/hosts', data: '127.0.0.1 localhost\n', xattrs: [['user.a', 'b']] },
  { path: 'big.bin', data: new Uint8Array(3 * 1024 * 1024 + 5).map((_, i) => (i * 31) & 0xff) },
  { path: 'lib', type: 'symlink', linkTarget: 'usr/lib' },
  ...Array.from({ length: 300 }, (_, i) => ({ path: `many/file-${String(i).padStart(4, '0')}`, data: 'x'.repeat(i) })),
  { path: 'etc/.wh.old' },
]);
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('the same input gives the same bytes', (t) => {
  t.is(sha(buildErofs(sample)), sha(buildErofs(sample)));
});

test('the image does not depend on how the input was chunked', (t) => {
  const reference = sha(buildErofs(sample, { chunkSize: sample.length }));
  for (const chunkSize of [1, 511, 512, 4096, 65537]) {
    t.is(sha(buildErofs(sample, { chunkSize })), reference, `chunks of ${chunkSize}`);
  }
});

test('the build time is every mtime and the superblock time; it changes the bytes', (t) => {
  const image = buildErofs(sample, { buildTime: 1 });
  const sb = new DataView(image.buffer, image.byteOffset + 1024, SUPER_BLOCK.size);
  t.is(Number(sb.getBigUint64(SUPER_BLOCK.fields.build_time.offset, true)), 1);
  t.not(sha(image), sha(buildErofs(sample)));
  t.is(DELIVERY_KIT_BUILD_TIME, 1750791050);
});

test('chunks come in order, at most 1 MiB each, and block 0 carries a valid superblock checksum', (t) => {
  const spill = DataSpill.create();
  t.teardown(() => spill.close());
  const builder = new ErofsBuilder({ spill });
  builder.entry(tarEntry('big', 'file', { size: 2_500_000 }));
  builder.data(new Uint8Array(2_500_000).fill(7));
  builder.end();
  const image = builder.finish();
  const sizes: number[] = [];
  let first: Uint8Array | undefined;
  for (const chunk of image.chunks()) {
    sizes.push(chunk.length);
    first ??= chunk.slice(0, 4096);
  }
  t.true(sizes.every((s) => s <= 1 << 20 && s % 4096 === 0));
  t.is(sizes.reduce((a, b) => a + b, 0), image.bytes);
  t.is(image.bytes, image.blocks * 4096);
  const sb = first!.slice(1024);
  const stored = new DataView(sb.buffer).getUint32(4, true);
  new DataView(sb.buffer).setUint32(4, 0, true);
  t.is(crc32c(0xffffffff, sb), stored);
  t.is(new DataView(sb.buffer).getUint32(0, true), 0xe0f5e1e2);
});

test('render() of any whole-block range, into dirty shared memory, gives the streamed bytes', (t) => {
  const spill = DataSpill.create();
  t.teardown(() => spill.close());
  const builder = new ErofsBuilder({ spill });
  const parser = new TarParser(builder);
  parser.write(sample);
  parser.end();
  const image = builder.finish();
  const pieces: Buffer[] = [];
  for (const chunk of image.chunks()) pieces.push(Buffer.from(chunk));
  const streamed = Buffer.concat(pieces);
  const blocks = image.bytes / 4096;
  const memory = new Uint8Array(new SharedArrayBuffer(image.bytes));
  for (const [first, count] of [[0, blocks], [0, 1], [1, 3], [blocks - 1, 1], [5, 300], [Math.floor(blocks / 2), blocks - Math.floor(blocks / 2)]] as const) {
    const into = memory.subarray(0, count * 4096);
    into.fill(0xa5);
    image.render(first * 4096, into);
    t.true(Buffer.from(into).equals(streamed.subarray(first * 4096, (first + count) * 4096)), `blocks ${first}..${first + count}`);
  }
  t.throws(() => image.render(100, memory.subarray(0, 4096)), { message: /not whole blocks/ });
  t.throws(() => image.render(image.bytes, memory.subarray(0, 4096)), { message: /not whole blocks/ });
});

test('a GNU volume label fills the superblock volume_name (first 16 bytes, last one wins)', (t) => {
  const spill = DataSpill.create();
  t.teardown(() => spill.close());
  const builder = new ErofsBuilder({ spill });
  builder.volumeLabel(new TextEncoder().encode('first'));
  builder.volumeLabel(new TextEncoder().encode('a-volume-label-longer-than-16'));
  builder.end();
  const [block0] = builder.finish().chunks();
  const name = block0!.subarray(1024 + SUPER_BLOCK.fields.volume_name.offset, 1024 + SUPER_BLOCK.fields.volume_name.offset + 16);
  t.is(Buffer.from(name).toString('latin1'), 'a-volume-label-l');
});

test('file data must match the entry size', (t) => {
  const tooMuch = t.throws(() => buildErofsFromEntries([{ ...tarEntry('f', 'file', { size: 2 }), data: new Uint8Array(3) }]), { instanceOf: LayerFormatError });
  t.regex(tooMuch!.message, /more file data/);
  const tooLittle = t.throws(() => buildErofsFromEntries([tarEntry('f', 'file', { size: 2 }), tarEntry('g', 'file')]), { instanceOf: LayerFormatError });
  t.regex(tooLittle!.message, /2 bytes early/);
});

test('the builder refuses calls out of order and after a failure', (t) => {
  const spill = DataSpill.create();
  t.teardown(() => spill.close());
  const builder = new ErofsBuilder({ spill });
  t.throws(() => builder.finish(), { instanceOf: FailedPreconditionError });
  const fresh = new ErofsBuilder({ spill });
  t.throws(() => fresh.entry(tarEntry('/abs', 'file')), { instanceOf: LayerFormatError });
  const after = t.throws(() => fresh.entry(tarEntry('ok', 'file')), { instanceOf: FailedPreconditionError });
  t.regex(after!.hint!, /earlier entry failed/);
  const done = new ErofsBuilder({ spill });
  done.end();
  done.finish();
  t.throws(() => done.finish(), { instanceOf: FailedPreconditionError });
});

test('file data goes to the spill, nothing else does', (t) => {
  const spill = DataSpill.create();
  t.teardown(() => spill.close());
  const builder = new ErofsBuilder({ spill });
  builder.entry(tarEntry('a', 'file', { size: 5 }));
  builder.data(new Uint8Array(5));
  builder.entry(tarEntry('.wh.b', 'file', { size: 7 }));
  builder.data(new Uint8Array(7));
  builder.entry(tarEntry('s', 'symlink', { linkTarget: 'a' }));
  builder.end();
  t.is(spill.size, 5);
});

test('more xattrs than i_xattr_icount can count on one inode are refused', (t) => {
  const value = new Uint8Array(65535);
  const xattrs = Array.from({ length: 5 }, (_, i) => ({ name: `user.x${i}`, value }));
  const error = t.throws(() => buildErofsFromEntries([tarEntry('f', 'file', { xattrs })]), { instanceOf: LayerFormatError });
  t.regex(error!.message, /bytes of xattrs on one inode, more than 262148/);
  t.is(error!.entry, "f");
});
