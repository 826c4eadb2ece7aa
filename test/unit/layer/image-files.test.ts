/** writeImageFiles: both files appear complete or not at all, also when an abort comes mid-write. */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ErofsImage } from '../../../snapshotter/layer/erofs/writer.js';
import { SLOT_BYTES } from '../../../snapshotter/layer/hash-thread.js';
import { writeImageFiles } from '../../../snapshotter/layer/image-files.js';
import { buildErofs } from '../../support/erofs-build.js';
import { TarBuilder } from '../../support/tar-writer.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'image-files-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A real image whose render() runs `onPiece` first: the test acts at an exact
 * point of the write instead of racing it from a timer.
 */
function imageWithHook(onPiece: (start: number) => void): ErofsImage {
  const archive = new TarBuilder();
  for (let i = 0; i < 4; i++) archive.add({ path: `f${i}`, data: randomBytes(1 << 20) });
  const bytes = buildErofs(archive.finish());
  return {
    bytes: bytes.length,
    blocks: bytes.length / 4096,
    inodes: 5,
    *chunks() {
      yield bytes;
    },
    render(start, into) {
      onPiece(start);
      into.set(bytes.subarray(start, start + into.length));
    },
  };
}

for (const [when, piece] of [
  ['the first piece', (_bytes: number) => 0],
  ['a middle piece', (_bytes: number) => SLOT_BYTES],
  ['the last piece', (bytes: number) => Math.floor((bytes - 1) / SLOT_BYTES) * SLOT_BYTES],
] as const) {
  test(`an abort while ${when} is written leaves neither file nor a temporary`, async (t) => {
    const dir = tempDir(t);
    const controller = new AbortController();
    let temporaries: string[] = [];
    let abortAt = -1;
    const image = imageWithHook((start) => {
      if (start !== abortAt) return;
      temporaries = readdirSync(dir);
      controller.abort(new Error('interrupted'));
    });
    abortAt = piece(image.bytes);
    t.true(image.bytes > 2 * SLOT_BYTES, 'the image spans several pieces');
    await t.throwsAsync(
      writeImageFiles(image, { output: join(dir, 'out.erofs'), hashFile: join(dir, 'out.verity'), signal: controller.signal }),
      { message: 'interrupted' },
    );
    t.true(temporaries.some((name) => name.startsWith('.tmp-out.erofs.')), `the abort came while the image's temporary existed: ${temporaries}`);
    t.deepEqual(readdirSync(dir), []);
  });
}

test('without an abort both files are there and nothing else', async (t) => {
  const dir = tempDir(t);
  const image = imageWithHook(() => undefined);
  const files = await writeImageFiles(image, { output: join(dir, 'out.erofs'), hashFile: join(dir, 'out.verity') });
  t.is(files.bytes, image.bytes);
  t.deepEqual(readdirSync(dir).sort(), ['out.erofs', 'out.verity']);
});
