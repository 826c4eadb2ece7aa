/**
 * Layer decompression: OCI layers are tar, tar+gzip or tar+zstd. The format is
 * sniffed from the first bytes (media types lie more often than magic numbers).
 * gzip goes through node:zlib (multi-member streams work, as with `gzip -d`),
 * zstd through ./zstd.ts. A damaged or truncated stream is a LayerFormatError
 * that names the compression and roughly where it broke; errors of the source
 * itself (I/O, network) pass through unchanged.
 */
import { Readable, type TransformOptions } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, type ZlibOptions } from 'node:zlib';
import { LayerFormatError } from '../core/errors.js';
import { decompressZstd } from './zstd.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Enough bytes for every magic number below. */
const SNIFF_BYTES = 4;

/** gzip: 1f 8b; zstd frame: 28 b5 2f fd; zstd skippable frame: 5? 2a 4d 18. Anything else is taken as a plain tar. */
export function detectCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4) {
    if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
    if ((head[0]! & 0xf0) === 0x50 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18) return 'zstd';
  }
  return 'none';
}

/** The uncompressed tar stream of a layer blob, whatever its compression. */
export async function* decompressLayer(source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  const { compression, stream } = await sniff(source);
  switch (compression) {
    case 'none':
      return yield* stream;
    case 'gzip':
      return yield* gunzip(stream);
    case 'zstd':
      return yield* decompressZstd(stream);
  }
}

/** Reads the first bytes, detects the compression, and gives back a stream that still starts at byte 0. */
async function sniff(source: AsyncIterable<Uint8Array>): Promise<{ compression: Compression; stream: AsyncIterable<Uint8Array> }> {
  const iterator = source[Symbol.asyncIterator]();
  const head: Uint8Array[] = [];
  let length = 0;
  let done = false;
  try {
    while (length < SNIFF_BYTES) {
      const next = await iterator.next();
      if (next.done) {
        done = true;
        break;
      }
      head.push(next.value);
      length += next.value.length;
    }
  } catch (error) {
    await iterator.return?.();
    throw error;
  }
  const compression = detectCompression(head.length === 1 ? head[0]! : Buffer.concat(head));
  async function* replay(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      yield* head;
      while (!done) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      if (!done) await iterator.return?.();
    }
  }
  return { compression, stream: replay() };
}

async function* gunzip(compressed: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  let consumed = 0;
  let produced = 0;
  let sourceError: { error: unknown } | undefined;
  async function* counted(): AsyncGenerator<Uint8Array, void, undefined> {
    try {
      for await (const chunk of compressed) {
        consumed += chunk.length;
        yield chunk;
      }
    } catch (error) {
      sourceError = { error };
      throw error;
    }
  }
  // Each output chunk is one round trip between zlib's thread and ours; 1 MiB
  // chunks keep inflating and parsing overlapped (64 KiB cost ~10% more time).
  // zlib only starts the next chunk while fewer than readableHighWaterMark bytes
  // wait to be read: at the 16 KiB default it idles while we parse each chunk;
  // 2 MiB lets it run ahead (200 MB, inflating + 2 ms/MiB of parsing: 0.77 s ->
  // 0.65-0.7 s; 4 MiB gave no more).
  const options: ZlibOptions & TransformOptions = { chunkSize: 1 << 20, readableHighWaterMark: 2 << 20 };
  const inflate = createGunzip(options);
  // One chunk of read-ahead: Readable.from's default of 16 holds 16 MiB of input while inflating
  // lags behind reading, and the dead chunks piling up before a GC doubled that (measured: peak RSS
  // of inflating a 1 GiB layer 139 MiB with 16, 88 MiB with 1, no slower).
  const feeding = pipeline(Readable.from(counted(), { highWaterMark: 1 }), inflate);
  feeding.catch(() => {}); // its errors surface through the iteration below
  try {
    for await (const chunk of inflate as AsyncIterable<Buffer>) {
      produced += chunk.length;
      yield chunk;
    }
    await feeding;
  } catch (error) {
    if (sourceError !== undefined && error === sourceError.error) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    throw new LayerFormatError(`gzip stream is corrupt or truncated (${reason}) after about ${consumed} compressed bytes ` +
      `(${produced} bytes decompressed)`, {}, { hint: 'the gzip-compressed layer is damaged or truncated; fetch it again', cause: error });
  } finally {
    // Also when the consumer stops early: wait until the source has been closed.
    inflate.destroy();
    await feeding.catch(() => {});
  }
}
