import test from 'ava';
import { crc32c, xxh32 } from '../../../../snapshotter/layer/erofs/checksum.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

test('crc32c is the Castagnoli CRC, without the final inversion EROFS leaves out', (t) => {
  // The standard check value of CRC-32C("123456789") is 0xe3069283 after the final inversion.
  t.is(crc32c(0xffffffff, text('123456789')), ~0xe3069283 >>> 0);
  t.is(crc32c(0xffffffff, new Uint8Array(0)), 0xffffffff);
  t.is(crc32c(crc32c(0xffffffff, text('1234')), text('56789')), crc32c(0xffffffff, text('123456789')));
});

test('xxh32 matches the reference vectors', (t) => {
  t.is(xxh32(text(''), 0), 0x02cc5d05);
  t.is(xxh32(text('a'), 0), 0x550d7456);
  t.is(xxh32(text('abc'), 0), 0x32d153ff);
  t.is(xxh32(text('Nobody inspects the spammish repetition'), 0), 0xe2293b2f);
});

test('xxh32 reads lanes from a view at any offset', (t) => {
  const backing = text('__Nobody inspects the spammish repetition');
  t.is(xxh32(backing.subarray(2), 0), 0xe2293b2f);
});
