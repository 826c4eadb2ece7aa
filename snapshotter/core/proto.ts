/**
 * Loads containerd's wire definitions from proto/ at run time. The options
 * here and the flags of `npm run gen:proto` must agree, or the generated types
 * in snapshotter/gen/ lie about the objects grpc-js hands us: field names as in
 * the .proto (snake_case), int64 as decimal strings, enums as their names,
 * defaults filled in.
 */
import { loadSync, type Options } from '@grpc/proto-loader';
import { loadPackageDefinition, type GrpcObject } from '@grpc/grpc-js';
import { fileURLToPath } from 'node:url';
import type { Timestamp__Output } from '../gen/google/protobuf/Timestamp.js';

/** proto/ of the installed package; this file is dist/snapshotter/core/proto.js. */
export const PROTO_DIR = fileURLToPath(new URL('../../../proto/', import.meta.url));

export const LOADER_OPTIONS: Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_DIR],
});

/** `file` relative to proto/, e.g. `containerd/services/snapshots/v1/snapshots.proto`. */
export function loadProto<T>(file: string): T {
  return loadPackageDefinition(loadSync(file, LOADER_OPTIONS)) as GrpcObject as unknown as T;
}

const NS_PER_SECOND = 1_000_000_000n;

/** Nanoseconds since the epoch → google.protobuf.Timestamp, exactly. */
export function toTimestamp(ns: bigint): Timestamp__Output {
  let seconds = ns / NS_PER_SECOND;
  let nanos = ns % NS_PER_SECOND;
  // Timestamp.nanos is never negative, also before 1970.
  if (nanos < 0n) {
    seconds -= 1n;
    nanos += NS_PER_SECOND;
  }
  return { seconds: seconds.toString(), nanos: Number(nanos) };
}

/** google.protobuf.Timestamp → nanoseconds since the epoch; an unset timestamp is 0. */
export function fromTimestamp(ts: Timestamp__Output | null | undefined): bigint {
  if (!ts) return 0n;
  return BigInt(ts.seconds) * NS_PER_SECOND + BigInt(ts.nanos);
}
