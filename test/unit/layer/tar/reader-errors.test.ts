/**
 * Damaged and hostile archives: each is refused with a LayerFormatError that
 * names the member (when known) and the offset of its header.
 */
import test, { type ExecutionContext } from 'ava';
import { LayerFormatError } from '../../../../snapshotter/core/errors.js';
import { MAX_METADATA_SIZE } from '../../../../snapshotter/layer/tar/reader.js';
import { parseChunks } from '../../../support/tar-events.js';
import {
  BLOCK, TarBuilder, base256, bytes, concat, gnuLongHeader, padToBlock, paxHeader, paxRecord, patchHeader, tar, tarHeader,
  type TarMember,
} from '../../../support/tar-writer.js';

interface Expected {
  message: RegExp;
  entry?: string;
  offset: number;
}

function refuses(t: ExecutionContext, archive: Uint8Array | Uint8Array[], expected: Expected): void {
  const error = t.throws(() => parseChunks(archive), { instanceOf: LayerFormatError })!;
  t.regex(error.message, expected.message);
  t.is(error.offset, expected.offset);
  t.true(error.message.includes(`offset ${expected.offset}`));
  t.is(error.entry, expected.entry);
  if (expected.entry !== undefined) t.true(error.message.includes(`entry ${JSON.stringify(expected.entry)}`));
}

/** An archive with `before` members, then `member` at a known offset. */
function withMember(member: TarMember, before: TarMember[] = [{ path: 'first', data: 'x' }]): { archive: Uint8Array; offset: number } {
  const builder = new TarBuilder();
  for (const m of before) builder.add(m);
  const offset = builder.add(member);
  return { archive: builder.finish(), offset };
}

const FIELD = { mode: 100, uid: 108, gid: 116, size: 124, mtime: 136, devmajor: 329, devminor: 337 } as const;

// ---- truncation

test('truncated inside a header block', (t) => {
  const { archive, offset } = withMember({ path: 'second' });
  refuses(t, archive.subarray(0, offset + 100), { message: /ends inside a header block \(100 of 512 bytes\)/, offset });
});

test('truncated inside file data, in several chunks', (t) => {
  const { archive, offset } = withMember({ path: 'big', data: 'z'.repeat(5000) });
  const cut = archive.subarray(0, offset + BLOCK + 3000);
  refuses(t, [cut.subarray(0, 1000), cut.subarray(1000)], { message: /2000 of 5000 bytes missing/, entry: 'big', offset });
});

test('truncated in the padding after file data', (t) => {
  const { archive, offset } = withMember({ path: 'padded', data: 'abc' });
  refuses(t, archive.subarray(0, offset + BLOCK + 3 + 10), { message: /ends inside the padding after a member/, entry: 'padded', offset });
});

test('truncated inside PAX data', (t) => {
  const { archive, offset } = withMember({ path: 'p'.repeat(200) });
  refuses(t, archive.subarray(0, offset + BLOCK + 50), { message: /ends inside a PAX extended header/, entry: 'PaxHeaders/' + 'p'.repeat(80), offset });
});

test('no end-of-archive marker', (t) => {
  refuses(t, tar([{ path: 'a', data: 'a' }], { endBlocks: 0 }), { message: /without the end-of-archive marker/, offset: 1024 });
});

test('a single zero block at the end (1.8.10 fails reading the next header)', (t) => {
  refuses(t, tar([{ path: 'a' }], { endBlocks: 1 }), { message: /single zero block/, offset: 1024 });
});

test('empty input', (t) => {
  refuses(t, new Uint8Array(0), { message: /without the end-of-archive marker/, offset: 0 });
});

// ---- header blocks

test('bad header checksum', (t) => {
  const { archive, offset } = withMember({ path: 'tampered', badChecksum: true });
  refuses(t, archive, { message: /checksum mismatch/, entry: 'tampered', offset });
});

test('checksum field that is not a number', (t) => {
  const { archive, offset } = withMember({ path: 'garbled' });
  refuses(t, patchHeader(archive, offset, 148, 'zz', { keepChecksum: true }), { message: /checksum field is not an octal number/, entry: 'garbled', offset });
});

test('missing ustar magic', (t) => {
  const { archive, offset } = withMember({ path: 'v7' });
  refuses(t, patchHeader(archive, offset, 257, 'xxxxx'), { message: /no "ustar" magic/, entry: 'v7', offset });
});

test('random bytes at the start suggest compression', (t) => {
  const garbage = new Uint8Array(2048).map((_, i) => (i * 37 + 11) & 0xff);
  const error = t.throws(() => parseChunks(garbage), { instanceOf: LayerFormatError })!;
  t.is(error.offset, 0);
});

for (const field of Object.keys(FIELD) as (keyof typeof FIELD)[]) {
  test(`malformed octal ${field} field`, (t) => {
    const { archive, offset } = withMember({ path: `bad-${field}`, type: 'char' });
    refuses(t, patchHeader(archive, offset, FIELD[field], '12x4'), { message: new RegExp(`${field} field is not a valid number`), entry: `bad-${field}`, offset });
  });
}

test('uid and gid outside 0..2^32-1 (1.8.10 would wrap them)', (t) => {
  const high = withMember({ path: 'high-uid', uid: 2 ** 32, base256: ['uid'] });
  refuses(t, high.archive, { message: /uid 4294967296 is outside 0\.\.4294967295/, entry: 'high-uid', offset: high.offset });
  const negative = withMember({ path: 'negative-gid' });
  refuses(t, patchHeader(negative.archive, negative.offset, FIELD.gid, '-1\0'), { message: /gid -1 is outside/, entry: 'negative-gid', offset: negative.offset });
});

test('negative and absurd sizes', (t) => {
  const negative = withMember({ path: 'negative' });
  refuses(t, patchHeader(negative.archive, negative.offset, FIELD.size, base256(-512, 12)), { message: /size -512 is outside/, entry: 'negative', offset: negative.offset });
  const absurd = withMember({ path: 'absurd' });
  refuses(t, patchHeader(absurd.archive, absurd.offset, FIELD.size, base256(2n ** 60n, 12)), { message: /size 1152921504606846976 is outside/, entry: 'absurd', offset: absurd.offset });
});

test('mtime beyond the safe integer range', (t) => {
  const { archive, offset } = withMember({ path: 'far-future' });
  refuses(t, patchHeader(archive, offset, FIELD.mtime, base256(2n ** 60n, 12)), { message: /mtime .* is outside/, entry: 'far-future', offset });
});

test('device numbers out of range', (t) => {
  const major = withMember({ path: 'major', type: 'block', devMajor: 4096 });
  refuses(t, major.archive, { message: /devmajor 4096 is outside 0\.\.4095/, entry: 'major', offset: major.offset });
  const minor = withMember({ path: 'minor', type: 'char', devMinor: 0x100000 });
  refuses(t, minor.archive, { message: /devminor 1048576 is outside 0\.\.1048575/, entry: 'minor', offset: minor.offset });
});

test('data on members that cannot have data', (t) => {
  for (const type of ['directory', 'hardlink', 'symlink', 'char', 'fifo'] as const) {
    const { archive, offset } = withMember({ path: `sized-${type}`, type, linkTarget: 'first' });
    refuses(t, patchHeader(archive, offset, FIELD.size, '00000001000\0'), {
      message: new RegExp(`type ${type} has a data size of 512`), entry: `sized-${type}`, offset,
    });
  }
});

// ---- PAX and GNU headers

/** A member preceded by a hand-made extended header with `data`. */
function withPax(data: Uint8Array, name = 'target'): { archive: Uint8Array; offset: number } {
  const builder = new TarBuilder();
  builder.add({ path: 'first' });
  const offset = builder.raw(paxHeader([data], { name: 'PaxHeaders/target' }));
  builder.add({ path: name });
  return { archive: builder.finish(), offset };
}

const PAX_CASES: [string, Uint8Array, RegExp][] = [
  ['a record without a length', bytes('path=x\n'), /has no length/],
  ['a length past the end of the header', bytes('99 path=x\n'), /bad length 99/],
  ['a length shorter than its own digits', bytes('2 path=x\n'), /bad length 2/],
  ['a record that does not end with a newline', bytes('11 path=xyz\n'), /does not end with a newline/],
  ['a record without =', bytes('9 pathxx\n'), /has no '='/],
  ['a size that is not a number', paxRecord('size', 'x'), /size is not a decimal number/],
  ['a size with trailing characters', paxRecord('size', '12k'), /size has trailing characters/],
  ['a negative size', paxRecord('size', '-1'), /size -1 is out of range/],
  ['a size beyond 2^53', paxRecord('size', '9007199254740993'), /size 9007199254740993 is out of range/],
  ['a uid beyond 2^32-1', paxRecord('uid', '4294967296'), /uid 4294967296 is outside/],
  ['a negative gid', paxRecord('gid', '-1'), /gid -1 is outside/],
  ['an mtime without digits', paxRecord('mtime', 'now'), /mtime is not a decimal number/],
  ['an mtime fraction without digits', paxRecord('mtime', '12.x'), /malformed fraction/],
  ['a path with a NUL', paxRecord('path', Buffer.from('a\0b', 'latin1')), /path contains a NUL byte/],
  ['a linkpath with a NUL', paxRecord('linkpath', Buffer.from('a\0b', 'latin1')), /linkpath contains a NUL byte/],
  ['an xattr name with a NUL', paxRecord(Buffer.from('SCHILY.xattr.us\0er.a', 'latin1'), '1'), /xattr name .* contains a NUL byte/],
  ['an encoded xattr name with a NUL', paxRecord('LIBARCHIVE.xattr.user%00.a', 'AAAA'), /xattr name .* contains a NUL byte/],
  ['a LIBARCHIVE value 1.8.10 cannot decode', paxRecord('LIBARCHIVE.xattr.user.a', '3q2+7w=='), /erofs-utils 1\.8\.10 cannot decode/],
  ['a LIBARCHIVE value with a character outside base64', paxRecord('LIBARCHIVE.xattr.user.a', 'A*'), /erofs-utils 1\.8\.10 cannot decode/],
];
for (const [what, data, message] of PAX_CASES) {
  test(`PAX header with ${what}`, (t) => {
    const { archive, offset } = withPax(data);
    refuses(t, archive, { message, entry: 'PaxHeaders/target', offset });
  });
}

test('the PAX length field counts its own digits (a correct record for contrast)', (t) => {
  t.deepEqual(parseChunks(withPax(bytes('11 path=xy\n')).archive).members.map((m) => m.entry.path), ['first', 'xy']);
});

test('a PAX error names the member a previous record already renamed', (t) => {
  const builder = new TarBuilder();
  builder.add({ path: 'first' });
  builder.raw(paxHeader([paxRecord('path', 'renamed/member')]));
  const offset = builder.raw(paxHeader([paxRecord('size', 'x')]));
  builder.add({ path: 'target' });
  refuses(t, builder.finish(), { message: /size is not a decimal number/, entry: 'renamed/member', offset });
});

test('a PAX global header error', (t) => {
  const builder = new TarBuilder();
  const offset = builder.raw(paxHeader([paxRecord('uid', 'x')], { global: true, name: 'GlobalHead' }));
  refuses(t, builder.finish(), { message: /uid is not a decimal number/, entry: 'GlobalHead', offset });
});

test('extended and GNU long-name headers over the size caps', (t) => {
  const pax = concat([tarHeader({ name: 'PaxHeaders/huge', typeflag: 'x', size: MAX_METADATA_SIZE + 1 }), new Uint8Array(2 * BLOCK)]);
  refuses(t, pax, { message: /PAX extended header of 1048577 bytes is larger than the 1048576 bytes allowed/, entry: 'PaxHeaders/huge', offset: 0 });
  const longName = concat([tarHeader({ name: '././@LongLink', typeflag: 'L', size: MAX_METADATA_SIZE + 1, magic: 'gnu' }), new Uint8Array(2 * BLOCK)]);
  refuses(t, longName, { message: /GNU long name of 1048577 bytes/, entry: '././@LongLink', offset: 0 });
  const longLink = concat([gnuLongHeader('K', 'k'.repeat(4096)), tarHeader({ name: 'l', typeflag: '2' }), new Uint8Array(2 * BLOCK)]);
  refuses(t, longLink, { message: /GNU long link name of 4097 bytes is larger than the 4096 bytes allowed/, entry: '././@LongLink', offset: 0 });
});

test('a GNU long name cut off by the end of input', (t) => {
  const archive = concat([gnuLongHeader('L', 'n'.repeat(700))]);
  refuses(t, archive.subarray(0, BLOCK + 100), { message: /ends inside a GNU long name: 601 of 701 bytes missing/, entry: '././@LongLink', offset: 0 });
});

test('truncated data of a skipped member', (t) => {
  const archive = concat([tarHeader({ name: 'dumpdir', typeflag: 'D', size: 1000 }), padToBlock(new Uint8Array(1000))]);
  refuses(t, archive.subarray(0, 1000), { message: /ends inside the data of a skipped member/, entry: 'dumpdir', offset: 0 });
});
