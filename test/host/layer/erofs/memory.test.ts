/**
 * The writer keeps metadata in memory, never file data: a 1 GiB layer of
 * 30,000 files, streamed through the tar reader into the builder and out
 * again, stays well under 200 MB of resident memory. A host test because it
 * writes a 1 GiB spill file and takes a few seconds; this file holds only
 * this test, so the worker's peak RSS is this build's.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { ErofsBuilder } from '../../../../snapshotter/layer/erofs/writer.js';
import { DataSpill } from '../../../../snapshotter/layer/spill.js';
import { TarParser } from '../../../../snapshotter/layer/tar/reader.js';
import { tarHeader } from '../../../support/tar-writer.js';

const FILES = 30_000;
const TOTAL = 1 << 30;
const LIMIT_MIB = 200;

test(`a 1 GiB layer of ${FILES} files stays under ${LIMIT_MIB} MiB RSS`, (t) => {
  t.timeout(240_000);
  const spill = DataSpill.create();
  t.teardown(() => spill.close());
  const builder = new ErofsBuilder({ spill });
  const parser = new TarParser(builder);
  // One shared buffer feeds every file, as a decompressor's output window would.
  const largest = Math.floor((2 * TOTAL) / FILES);
  const source = new Uint8Array(largest).map((_, i) => (i * 13) & 0xff);
  const zeros = new Uint8Array(1024);
  let data = 0;
  for (let i = 0; i < FILES; i++) {
    const size = (i * 7919) % largest;
    parser.write(tarHeader({ name: `dir-${i % 300}/sub-${i % 7}/file-${i}.bin`, typeflag: '0', size }));
    for (let o = 0; o < size; o += 65536) parser.write(source.subarray(o, Math.min(size, o + 65536)));
    if (size % 512) parser.write(zeros.subarray(0, 512 - (size % 512)));
    data += size;
  }
  parser.write(zeros);
  parser.end();
  const image = builder.finish();
  const hash = createHash('sha256');
  let bytes = 0;
  for (const chunk of image.chunks()) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  t.is(bytes, image.bytes);
  t.true(image.bytes > data, 'the image holds all file data');
  const peak = process.resourceUsage().maxRSS / 1024;
  t.log(`${FILES} files, ${Math.round(data / 2 ** 20)} MiB of data, ${Math.round(image.bytes / 2 ** 20)} MiB image, peak RSS ${Math.round(peak)} MiB`);
  t.true(peak < LIMIT_MIB, `peak RSS ${Math.round(peak)} MiB`);
});
