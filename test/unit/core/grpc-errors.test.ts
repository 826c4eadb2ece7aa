import test from 'ava';
import * as grpc from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  ConfigError,
  FailedPreconditionError,
  IntegrityViolationError,
  InvalidArgumentError,
  LayerFormatError,
  NotFoundError,
  SignatureError,
  SystemCallError,
  UnimplementedError,
} from '../../../snapshotter/core/errors.js';
import { toGrpcStatus } from '../../../snapshotter/core/grpc-errors.js';

// containerd's errdefs turns exactly these codes back into its sentinel errors.
const table: Array<[unknown, grpc.status]> = [
  [new InvalidArgumentError('x'), grpc.status.INVALID_ARGUMENT],
  [new ConfigError('x'), grpc.status.INVALID_ARGUMENT],
  [new LayerFormatError('x'), grpc.status.INVALID_ARGUMENT],
  [new NotFoundError('x'), grpc.status.NOT_FOUND],
  [new AlreadyExistsError('x'), grpc.status.ALREADY_EXISTS],
  [new FailedPreconditionError('x'), grpc.status.FAILED_PRECONDITION],
  [new IntegrityViolationError('x'), grpc.status.FAILED_PRECONDITION],
  [new SignatureError('x'), grpc.status.FAILED_PRECONDITION],
  [new UnimplementedError('x'), grpc.status.UNIMPLEMENTED],
  [new SystemCallError('EIO', 'read', '/x', 'I/O error'), grpc.status.INTERNAL],
  [new Error('plain'), grpc.status.INTERNAL],
  ['a string', grpc.status.INTERNAL],
];

for (const [err, expected] of table) {
  test(`${(err as Error).constructor?.name ?? typeof err} → ${grpc.status[expected]}`, (t) => {
    t.is(toGrpcStatus(err).code, expected);
  });
}

test('details carry the message and the hint', (t) => {
  t.deepEqual(toGrpcStatus(new NotFoundError('snapshot "a" not found', { hint: 'check the key' })), {
    code: grpc.status.NOT_FOUND,
    details: 'snapshot "a" not found (check the key)',
  });
  t.is(toGrpcStatus(new Error('boom')).details, 'boom');
});
