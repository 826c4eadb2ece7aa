import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { Xxh64, xxh64 } from '../../../snapshotter/layer/xxh64.js';

test('published XXH64 values (seed 0)', (t) => {
  t.is(xxh64(new Uint8Array(0)), 0xef46db3751d8e999n);
  t.is(xxh64(Buffer.from('a')), 0xd24ec4f1a98c6e5bn);
  t.is(xxh64(Buffer.from('abc')), 0x44bc2cf5ad770999n);
});

test('agrees with the content checksums the zstd command writes', (t) => {
  try {
    execFileSync('zstd', ['--version']);
  } catch {
    return t.log('skipped: the zstd command is not installed'), t.pass();
  }
  for (const size of [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 1000, 65_536 + 77, 300_001]) {
    const data = Buffer.from(Array.from({ length: size }, (_, i) => (i * 7919 + (i >> 8)) & 0xff));
    const frame = execFileSync('zstd', ['-q', '-c', '--check'], { input: data });
    t.is(Number(xxh64(data) & 0xffffffffn), frame.readUInt32LE(frame.length - 4), `size ${size}`);
  }
});

test('feeding in pieces gives the same hash as one call', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 3000 }), fc.array(fc.nat({ max: 3000 }), { maxLength: 8 }), (data, cuts) => {
    const hash = new Xxh64();
    let start = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      hash.update(data.subarray(start, Math.max(start, cut)));
      start = Math.max(start, cut);
    }
    hash.update(data.subarray(start));
    return hash.digest() === xxh64(data);
  }));
  t.pass();
});
