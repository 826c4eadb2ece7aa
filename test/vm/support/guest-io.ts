/**
 * What the guest programs (test/vm/guest/) do to files and devices to prove
 * dm-verity catches a change: flip a byte under it, make the next read a
 * fresh one, and record a failed call as its errno name, so the host test
 * judges an observation rather than a crash.
 */
import { closeSync, openSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { SystemCallError } from '../../../snapshotter/core/errors.js';

/** Inverts the lowest bit of the byte at `offset` in `file`: applied twice, the file is intact again. */
export function flipByte(file: string, offset: number): void {
  const fd = openSync(file, 'r+');
  try {
    const byte = Buffer.alloc(1);
    readSync(fd, byte, 0, 1, offset);
    byte[0] = byte[0]! ^ 0x01;
    writeSync(fd, byte, 0, 1, offset);
  } finally {
    closeSync(fd);
  }
}

/** The intact pages are still cached above dm-verity; only a fresh read is verified. */
export function dropCaches(): void {
  writeFileSync('/proc/sys/vm/drop_caches', '3\n');
}

/** Up to the first `length` bytes of `path`: reads only the blocks they are in. */
export function readHead(path: string, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    return buffer.subarray(0, readSync(fd, buffer, 0, length, 0));
  } finally {
    closeSync(fd);
  }
}

/** The errno name of a failed call (a Node error's code, a SystemCallError's errno), or "none". */
export async function errnoOf(call: () => unknown): Promise<string> {
  try {
    await call();
    return 'none';
  } catch (err) {
    if (err instanceof SystemCallError) return err.errno;
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}
