/**
 * Where regular-file data waits between parsing the tar and writing the
 * image. EROFS places data only after the whole tree is known, and the tar
 * is read once, so the data has to go somewhere that is not memory: a temp
 * file, unlinked right after it is opened so nothing is left behind even
 * after a crash (the kernel frees it with the last descriptor).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEMP_MARKER } from '../core/atomic-file.js';
import { InternalError, SystemCallError } from '../core/errors.js';

/** Appends are gathered into writes of this size. */
const WRITE_BUFFER = 1 << 20;
/**
 * Appends at least this big are written straight from the caller's memory:
 * gathering them would only add a copy (most of a layer's bytes come as large
 * slices of the decompressor's output).
 */
const DIRECT_WRITE = 64 << 10;

export class DataSpill {
  private readonly fd: number;
  private readonly dir: string;
  private readonly pending = Buffer.allocUnsafe(WRITE_BUFFER);
  private pendingLength = 0;
  private written = 0;
  private closed = false;

  private constructor(fd: number, dir: string) {
    this.fd = fd;
    this.dir = dir;
  }

  /** Opens an anonymous temp file in `dir` (the OS temp dir by default). */
  static create(dir: string = tmpdir()): DataSpill {
    // TEMP_MARKER: if the process dies between open and unlink, start-up cleanup knows the name.
    const path = join(dir, `${TEMP_MARKER}erofs-spill-${process.pid}-${randomBytes(6).toString('hex')}`);
    const fd = attempt('open', dir, () => openSync(path, 'wx+', 0o600));
    try {
      attempt('unlink', dir, () => unlinkSync(path));
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return new DataSpill(fd, dir);
  }

  /** Bytes appended so far. */
  get size(): number {
    return this.written + this.pendingLength;
  }

  append(chunk: Uint8Array): void {
    this.assertOpen();
    if (chunk.length >= DIRECT_WRITE) {
      this.flush();
      this.writeAt(chunk, chunk.length);
      return;
    }
    let from = 0;
    while (from < chunk.length) {
      if (this.pendingLength === WRITE_BUFFER) this.flush();
      const n = Math.min(chunk.length - from, WRITE_BUFFER - this.pendingLength);
      this.pending.set(chunk.subarray(from, from + n), this.pendingLength);
      this.pendingLength += n;
      from += n;
    }
  }

  /** Reads `length` bytes at `offset` into the start of `into`. */
  read(offset: number, length: number, into: Uint8Array): void {
    this.assertOpen();
    if (offset < 0 || length < 0 || offset + length > this.size || length > into.length) {
      throw new InternalError(`spill read ${offset}+${length} outside 0..${this.size}`);
    }
    if (offset + length > this.written) this.flush();
    let done = 0;
    while (done < length) {
      const n = attempt('read', this.dir, () => readSync(this.fd, into, done, length - done, offset + done));
      if (n === 0) throw new InternalError(`spill file ended at ${offset + done}, expected ${offset + length}`);
      done += n;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }

  private flush(): void {
    this.writeAt(this.pending, this.pendingLength);
    this.pendingLength = 0;
  }

  /** Writes the first `length` bytes of `bytes` at the end of what is written. */
  private writeAt(bytes: Uint8Array, length: number): void {
    let done = 0;
    while (done < length) {
      done += attempt('write', this.dir, () => writeSync(this.fd, bytes, done, length - done, this.written + done));
    }
    this.written += length;
  }

  private assertOpen(): void {
    if (this.closed) throw new InternalError('the data spill is closed');
  }
}

function attempt<T>(syscall: string, dir: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
    throw new SystemCallError(code, syscall, dir, 'layer data spill file failed', {
      cause: err,
      hint: 'the spill directory needs free space for the uncompressed file data of the layer',
    });
  }
}
