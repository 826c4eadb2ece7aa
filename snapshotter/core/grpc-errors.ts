/**
 * The one table from our errors to gRPC statuses, for every service we serve.
 * containerd turns the codes back into its errdefs (ALREADY_EXISTS,
 * NOT_FOUND, FAILED_PRECONDITION, INVALID_ARGUMENT, UNIMPLEMENTED, ...), so
 * the code decides what containerd does; the details are what people read.
 */
import { GrpcCode } from './grpc-status.js';
import { IntegrityError, toIntegrityError } from './errors.js';

export interface GrpcStatus {
  code: GrpcCode;
  /** Message plus hint: containerd shows it verbatim in its own error. */
  details: string;
}

export function toGrpcStatus(err: unknown): GrpcStatus {
  const e: IntegrityError = toIntegrityError(err);
  return { code: e.grpcCode, details: e.describe() };
}
