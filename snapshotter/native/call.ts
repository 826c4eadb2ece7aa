/**
 * The boundary to the addon: arguments are checked here before they cross,
 * and a failed system call comes back as a SystemCallError with the errno
 * name, the call, the path and a hint.
 */
import { InvalidArgumentError, SystemCallError } from '../core/errors.js';
import { loadNative, type NativeBinding } from './loader.js';

/** What the addon's rejected promises carry (see native/worker.cc). */
export interface NativeFailure {
  code: string;
  errno: number;
  syscall: string;
  path: string;
  description: string;
}

/** A better message or a hint for one failure; undefined keeps the kernel's words. */
export type Explain = (failure: NativeFailure) => { message?: string; hint?: string } | undefined;

/** Runs one native call, converting its failure with `explain` and then the hints every call shares. */
export async function callNative<T>(call: (native: NativeBinding) => Promise<T>, explain?: Explain): Promise<T> {
  const native = loadNative();
  try {
    return await call(native);
  } catch (err) {
    throw toSystemCallError(err, explain);
  }
}

export function toSystemCallError(err: unknown, explain?: Explain): unknown {
  if (!isNativeFailure(err)) return err;
  const specific = explain?.(err);
  const message = specific?.message ?? err.description;
  const hint = specific?.hint ?? commonHint(err);
  return new SystemCallError(err.code, err.syscall, err.path || undefined, message, { hint, cause: err });
}

function isNativeFailure(err: unknown): err is NativeFailure {
  const e = err as Partial<NativeFailure> | null;
  return typeof e?.code === 'string' && typeof e.syscall === 'string' && typeof e.errno === 'number';
}

function commonHint(failure: NativeFailure): string | undefined {
  if (failure.code === 'EPERM' || failure.code === 'EACCES') {
    return 'this needs root (CAP_SYS_ADMIN); run the daemon as root';
  }
  return undefined;
}

/** A string the kernel will read as a C string: present and free of NUL bytes. */
export function checkString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new InvalidArgumentError(`${what} must be a non-empty string, got ${JSON.stringify(value)}`);
  }
  if (value.includes('\0')) {
    throw new InvalidArgumentError(`${what} must not contain NUL bytes: ${JSON.stringify(value)}`);
  }
  return value;
}

/** A path (or other C string) as text or raw bytes: present and free of NUL bytes. */
export function checkPath(value: unknown, what: string): string | Buffer {
  if (Buffer.isBuffer(value)) {
    if (value.length === 0 || value.includes(0)) {
      throw new InvalidArgumentError(`${what} must be non-empty and free of NUL bytes: ${JSON.stringify(value.toString('latin1'))}`);
    }
    return value;
  }
  return checkString(value, what);
}

/** Named flags from `table`, or an already combined number, as one number. */
export function checkFlags<Name extends string>(
  flags: readonly Name[] | number,
  table: Readonly<Record<Name, number>>,
  what: string,
): number {
  if (typeof flags === 'number') {
    if (!Number.isInteger(flags) || flags < 0 || flags > 0xffff_ffff) {
      throw new InvalidArgumentError(`${what} must be an unsigned 32-bit integer, got ${flags}`);
    }
    return flags;
  }
  if (!Array.isArray(flags)) throw new InvalidArgumentError(`${what} must be an array of flag names or a number`);
  let value = 0;
  for (const name of flags as readonly Name[]) {
    if (!Object.hasOwn(table, name)) {
      throw new InvalidArgumentError(`unknown ${what} ${JSON.stringify(name)}`, {
        hint: `use one of ${Object.keys(table).join(', ')}`,
      });
    }
    value |= table[name];
  }
  return value >>> 0;
}
