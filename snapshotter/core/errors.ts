/**
 * Typed errors. Every error the project raises on purpose is an IntegrityError:
 * a stable `code` for programs and tests, the gRPC status containerd expects,
 * and a `hint` that tells a human what to do. `cause` keeps the original error.
 */
import { GrpcCode } from './grpc-status.js';

export interface ErrorOptions {
  /** What the user can do about it; printed after the message. */
  hint?: string;
  cause?: unknown;
}

export abstract class IntegrityError extends Error {
  abstract readonly code: string;
  abstract readonly grpcCode: GrpcCode;
  readonly hint: string | undefined;

  constructor(message: string, options: ErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }

  /** Message plus hint, as shown to people (CLI, gRPC status details). */
  describe(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

export class InvalidArgumentError extends IntegrityError {
  readonly code: string = 'ERR_INVALID_ARGUMENT';
  readonly grpcCode: GrpcCode = GrpcCode.INVALID_ARGUMENT;
}

export class NotFoundError extends IntegrityError {
  readonly code: string = 'ERR_NOT_FOUND';
  readonly grpcCode: GrpcCode = GrpcCode.NOT_FOUND;
}

export class AlreadyExistsError extends IntegrityError {
  readonly code: string = 'ERR_ALREADY_EXISTS';
  readonly grpcCode: GrpcCode = GrpcCode.ALREADY_EXISTS;
}

export class FailedPreconditionError extends IntegrityError {
  readonly code: string = 'ERR_FAILED_PRECONDITION';
  readonly grpcCode: GrpcCode = GrpcCode.FAILED_PRECONDITION;
}

export class UnimplementedError extends IntegrityError {
  readonly code: string = 'ERR_UNIMPLEMENTED';
  readonly grpcCode: GrpcCode = GrpcCode.UNIMPLEMENTED;
}

export class UnavailableError extends IntegrityError {
  readonly code: string = 'ERR_UNAVAILABLE';
  readonly grpcCode: GrpcCode = GrpcCode.UNAVAILABLE;
}

export class InternalError extends IntegrityError {
  readonly code: string = 'ERR_INTERNAL';
  readonly grpcCode: GrpcCode = GrpcCode.INTERNAL;
}

/** Configuration that cannot be used: unknown keys, bad values, conflicting options. */
export class ConfigError extends InvalidArgumentError {
  override readonly code = 'ERR_CONFIG';
}

/**
 * A layer stream that cannot be converted: bad compression, bad tar, unsafe
 * paths, impossible values. Names the entry and its byte offset in the
 * uncompressed tar so the producer of the layer can find it.
 */
export class LayerFormatError extends InvalidArgumentError {
  override readonly code = 'ERR_LAYER_FORMAT';
  readonly entry: string | undefined;
  readonly offset: number | undefined;

  constructor(message: string, where: { entry?: string; offset?: number } = {}, options: ErrorOptions = {}) {
    const at = [
      where.entry !== undefined ? `entry ${JSON.stringify(where.entry)}` : undefined,
      where.offset !== undefined ? `offset ${where.offset}` : undefined,
    ].filter(Boolean);
    super(at.length ? `${message} (${at.join(', ')})` : message, options);
    this.entry = where.entry;
    this.offset = where.offset;
  }
}

/**
 * Content that does not match what was promised: a digest, a dm-verity root
 * hash, a corrupted verity device. Never retried silently; never mounted.
 */
export class IntegrityViolationError extends FailedPreconditionError {
  override readonly code = 'ERR_INTEGRITY';
}

/** A signature, certificate chain or trust decision that failed. */
export class SignatureError extends FailedPreconditionError {
  override readonly code = 'ERR_SIGNATURE';
}

/**
 * A failed system call from the native addon or the kernel, with the errno
 * name (`ENOENT`), the call and the path it was about.
 */
export class SystemCallError extends IntegrityError {
  readonly code: string = 'ERR_SYSCALL';
  readonly grpcCode: GrpcCode = GrpcCode.INTERNAL;
  readonly errno: string;
  readonly syscall: string;
  readonly path: string | undefined;

  constructor(errno: string, syscall: string, path: string | undefined, message: string, options: ErrorOptions = {}) {
    super(`${syscall}${path ? ` ${path}` : ''}: ${errno}: ${message}`, options);
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }
}

/** The absent-means-ENOENT rule: only ENOENT says "not there"; every other error is a failure. */
export function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT' || (err as { errno?: unknown } | null)?.errno === 'ENOENT';
}

/** Any thrown value as an IntegrityError, keeping the original as `cause`. */
export function toIntegrityError(err: unknown): IntegrityError {
  if (err instanceof IntegrityError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InternalError(message, { cause: err });
}
