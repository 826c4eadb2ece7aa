import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { LayerFormatError } from '../../../snapshotter/core/errors.js';
import { decompressLayer, detectCompression } from '../../../snapshotter/layer/compression.js';
import { ZstdDecoder } from '../../../snapshotter/layer/zstd.js';

/** Deterministic test content: a compressible part and an incompressible part (raw zstd blocks). */
function content(size: number, seed = 'layer'): Buffer {
  const parts: Buffer[] = [];
  for (let i = 0; parts.length * 32 < Math.floor(size / 2); i++) parts.push(createHash('sha256').update(`${seed}${i}`).digest());
  const random = Buffer.concat(parts);
  const text = Buffer.from(`${seed} text line with words that repeat\n`.repeat(Math.ceil(size / 60))).subarray(0, size - random.length);
  return Buffer.concat([text, random]).subarray(0, size);
}

async function* chunksOf(data: Uint8Array, size = 7000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function decompress(data: Uint8Array, chunkSize?: number): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of decompressLayer(chunksOf(data, chunkSize))) out.push(Buffer.from(chunk));
  return Buffer.concat(out);
}

const zstdMissing = ((): string | undefined => {
  try {
    execFileSync('zstd', ['--version']);
    return undefined;
  } catch {
    return 'the zstd command is not installed (Debian package zstd)';
  }
})();

/** Compresses through a pipe, so the frame header has no content size. */
function zstd(data: Uint8Array, ...options: string[]): Buffer {
  return execFileSync('zstd', ['-q', '-c', ...options], { input: data, maxBuffer: 256 * 1024 * 1024 });
}

/** Compresses a file, so the frame header carries the content size. */
function zstdFile(data: Uint8Array, ...options: string[]): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'zstd-'));
  try {
    writeFileSync(join(dir, 'in'), data);
    return execFileSync('zstd', ['-q', '-c', ...options, join(dir, 'in')], { maxBuffer: 256 * 1024 * 1024 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('compression is detected from magic numbers', (t) => {
  t.is(detectCompression(Uint8Array.of(0x1f, 0x8b, 8, 0)), 'gzip');
  t.is(detectCompression(Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, 0)), 'zstd');
  t.is(detectCompression(Uint8Array.of(0x50, 0x2a, 0x4d, 0x18)), 'zstd');
  t.is(detectCompression(Uint8Array.of(0x5f, 0x2a, 0x4d, 0x18)), 'zstd');
  t.is(detectCompression(Uint8Array.of(0x60, 0x2a, 0x4d, 0x18)), 'none');
  t.is(detectCompression(Buffer.from('etc/\0\0\0')), 'none');
  t.is(detectCompression(Uint8Array.of(0x28, 0xb5, 0x2f)), 'none');
  t.is(detectCompression(new Uint8Array(0)), 'none');
});

test('an uncompressed stream passes through unchanged, even when its first chunks are tiny', async (t) => {
  const data = content(50_000);
  t.deepEqual(await decompress(data, 1), data);
  t.deepEqual(await decompress(data), data);
  t.deepEqual(await decompress(new Uint8Array(0)), Buffer.alloc(0));
});

test('gzip round trip, as written by node:zlib and by the gzip command', async (t) => {
  const data = content(300_000);
  t.deepEqual(await decompress(gzipSync(data)), data);
  t.deepEqual(await decompress(execFileSync('gzip', ['-c', '-9'], { input: data })), data);
});

test('multi-member gzip decompresses to all members, as gzip -d does', async (t) => {
  const first = content(10_000, 'one');
  const second = content(20_000, 'two');
  t.deepEqual(await decompress(Buffer.concat([gzipSync(first), gzipSync(second), gzipSync(Buffer.alloc(0))]), 333), Buffer.concat([first, second]));
});

test('truncated and corrupt gzip streams are LayerFormatErrors that say gzip', async (t) => {
  const gz = gzipSync(content(100_000));
  for (const damaged of [gz.subarray(0, gz.length - 4), gz.subarray(0, gz.length / 2), gz.subarray(0, 12)]) {
    await t.throwsAsync(decompress(damaged), { instanceOf: LayerFormatError, message: /^gzip stream is corrupt or truncated .*compressed bytes/ });
  }
  const flipped = Buffer.from(gz);
  flipped[gz.length - 6]! ^= 0x01; // inside the CRC-32 trailer
  await t.throwsAsync(decompress(flipped), { instanceOf: LayerFormatError, message: /gzip/ });
  await t.throwsAsync(decompress(Buffer.concat([gz, Buffer.from('trailing garbage')])), { instanceOf: LayerFormatError });
});

test('zstd round trip with the zstd command: checksummed, unchecked, streamed, multi-frame', async (t) => {
  if (zstdMissing) return t.log(`skipped: ${zstdMissing}`), t.pass();
  const data = content(1_000_000);
  t.deepEqual(await decompress(zstd(data)), data);
  t.deepEqual(await decompress(zstd(data, '--no-check', '-19')), data);
  t.deepEqual(await decompress(zstdFile(data, '-1')), data);
  t.deepEqual(await decompress(zstdFile(data, '--no-check', '--long=24')), data);
  const other = content(3000, 'other');
  t.deepEqual(await decompress(Buffer.concat([zstd(data), zstd(other), zstd(Buffer.alloc(0))]), 4096), Buffer.concat([data, other]));
});

test('zstd skippable frames are skipped wherever they are', async (t) => {
  if (zstdMissing) return t.log(`skipped: ${zstdMissing}`), t.pass();
  const skippable = (length: number): Buffer => Buffer.concat([Buffer.from([0x5a, 0x2a, 0x4d, 0x18]), Buffer.from(new Uint32Array([length]).buffer), Buffer.alloc(length, 0xee)]);
  const data = content(40_000);
  t.deepEqual(await decompress(Buffer.concat([skippable(10), zstd(data), skippable(0), skippable(5000)]), 1000), data);
});

test('zstd output does not depend on how the compressed stream is chunked', async (t) => {
  if (zstdMissing) return t.log(`skipped: ${zstdMissing}`), t.pass();
  const data = content(200_000);
  const compressed = zstd(Buffer.concat([data.subarray(0, 5)]), '--no-check');
  const frames = Buffer.concat([zstd(data), compressed, zstdFile(data)]);
  const want = Buffer.concat([data, data.subarray(0, 5), data]);
  await fc.assert(fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 70_000 }), { minLength: 1, maxLength: 20 }), async (sizes) => {
    const decoder = new ZstdDecoder();
    const out: Uint8Array[] = [];
    let offset = 0;
    for (let i = 0; offset < frames.length; i++) {
      const size = sizes[i % sizes.length]!;
      out.push(...decoder.push(frames.subarray(offset, offset + size)));
      offset += size;
    }
    out.push(...decoder.end());
    return Buffer.concat(out).equals(want);
  }), { numRuns: 30 });
  t.pass();
});

test('truncated zstd streams are LayerFormatErrors at every cut', async (t) => {
  if (zstdMissing) return t.log(`skipped: ${zstdMissing}`), t.pass();
  const compressed = zstd(content(300_000));
  for (const cut of [4, 5, 8, 100, compressed.length / 2, compressed.length - 5, compressed.length - 1]) {
    await t.throwsAsync(decompress(compressed.subarray(0, Math.floor(cut))), { instanceOf: LayerFormatError, message: /^zstd stream is truncated/ });
  }
});

// (Damage to the magic number makes the stream look uncompressed; the tar reader then refuses it.)
test('a damaged zstd stream is refused or decodes to the original, never to other bytes', async (t) => {
  if (zstdMissing) return t.log(`skipped: ${zstdMissing}`), t.pass();
  const data = content(200_000);
  const compressed = zstd(data);
  await fc.assert(fc.asyncProperty(fc.integer({ min: 4, max: compressed.length - 1 }), fc.integer({ min: 0, max: 7 }), async (at, bit) => {
    const damaged = Buffer.from(compressed);
    damaged[at]! ^= 1 << bit;
    try {
      return (await decompress(damaged, 65536)).equals(data);
    } catch (error) {
      return error instanceof LayerFormatError && /^zstd stream is corrupt/.test(error.message);
    }
  }), { numRuns: 150 });
  t.pass();
});

test('zstd checks that fzstd does not make: content checksum, content size, trailing garbage, dictionaries', async (t) => {
  if (zstdMissing) return t.log(`skipped: ${zstdMissing}`), t.pass();
  const data = content(10_000);
  const compressed = zstd(data, '-1');
  const badChecksum = Buffer.from(compressed);
  badChecksum[badChecksum.length - 1]! ^= 0xff;
  await t.throwsAsync(decompress(badChecksum), { message: /frame content checksum mismatch, in frame 0 \(starting at compressed byte 0\)/ });
  const wrongSize = zstdFile(data, '-1', '--no-check');
  const descriptor = wrongSize[4]!;
  t.is(descriptor >> 6, 1); // a 2-byte content size field (value - 256), after the window byte unless single-segment
  wrongSize.writeUInt16LE(data.length - 256 - 1, 5 + ((descriptor >> 5) & 1 ? 0 : 1));
  await t.throwsAsync(decompress(wrongSize), { message: /the frame decoded to 10000 bytes, its header says 9999/ });
  await t.throwsAsync(decompress(Buffer.concat([compressed, Buffer.from('garbage!')])), { message: /no zstd frame magic number/ });
  const withDictionary = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x01, 0x58, 0x07]), compressed.subarray(6)]);
  await t.throwsAsync(decompress(withDictionary), { message: /needs zstd dictionary 7/ });
});

test('errors of the source pass through every decompressor unchanged', async (t) => {
  const failure = new Error('connection reset');
  const heads = [gzipSync(content(100_000)), zstdMissing ? undefined : zstd(content(100_000)), content(100_000)];
  for (const head of heads) {
    if (!head) continue;
    async function* failing(): AsyncGenerator<Uint8Array> {
      yield head!.subarray(0, 5000);
      throw failure;
    }
    const out = decompressLayer(failing());
    const error = await t.throwsAsync(async () => {
      for await (const chunk of out) void chunk;
    });
    t.is(error, failure);
  }
});

test('a consumer that stops early closes the source', async (t) => {
  for (const data of [gzipSync(content(500_000)), content(500_000)]) {
    let closed = false;
    async function* source(): AsyncGenerator<Uint8Array> {
      try {
        yield* chunksOf(data, 1000);
      } finally {
        closed = true;
      }
    }
    for await (const chunk of decompressLayer(source())) {
      t.true(chunk.length > 0);
      break;
    }
    t.true(closed);
  }
});
