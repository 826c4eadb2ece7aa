/**
 * Crash-ordered file creation: write under a temporary name in the target's
 * directory, fsync, rename over the target, fsync the directory. A crash at any
 * point leaves either no file or the whole file, never a partial one under the
 * final name. Leftover temporaries carry TEMP_MARKER so startup cleanup can find them.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isNotFound } from './errors.js';

export const TEMP_MARKER = '.tmp-';

export class AtomicFile {
  readonly path: string;
  readonly tempPath: string;
  readonly fd: number;
  private open = true;

  private constructor(path: string, tempPath: string, fd: number) {
    this.path = path;
    this.tempPath = tempPath;
    this.fd = fd;
  }

  static create(path: string, mode = 0o644): AtomicFile {
    const tempPath = join(dirname(path), `${TEMP_MARKER}${basename(path)}.${randomBytes(6).toString('hex')}`);
    const fd = openSync(tempPath, 'wx', mode);
    return new AtomicFile(path, tempPath, fd);
  }

  /** Writes all of `data` at `position` (or at the current offset). */
  write(data: Uint8Array, position?: number): void {
    let done = 0;
    while (done < data.length) {
      done += writeSync(this.fd, data, done, data.length - done, position === undefined ? null : position + done);
    }
  }

  /** fsync, rename into place, fsync the directory so the rename itself is durable. */
  commit(): void {
    fsyncSync(this.fd);
    closeSync(this.fd);
    this.open = false;
    try {
      renameSync(this.tempPath, this.path);
    } catch (err) {
      // e.g. the target is a directory: abort() can no longer see the temporary, so drop it here.
      unlinkSync(this.tempPath);
      throw err;
    }
    syncDirectory(dirname(this.path));
  }

  /** Drops the temporary file; safe to call after commit() or twice. */
  abort(): void {
    if (this.open) {
      closeSync(this.fd);
      this.open = false;
      try {
        unlinkSync(this.tempPath);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }
}

export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
