/**
 * The gRPC adapter: containerd.services.snapshots.v1.Snapshots ↔ Snapshotter
 * calls, and nothing else (containerd's contrib/snapshotservice). Every
 * request belongs to a containerd namespace (namespaceOf); every failure goes
 * through toGrpcStatus(), so containerd sees the codes its errdefs know.
 */
import * as grpc from '@grpc/grpc-js';
import { FailedPreconditionError, InvalidArgumentError, IntegrityError } from '../core/errors.js';
import { toGrpcStatus } from '../core/grpc-errors.js';
import { GrpcCode } from '../core/grpc-status.js';
import type { Logger } from '../core/log.js';
import { loadProto, toTimestamp } from '../core/proto.js';
import type { ProtoGrpcType } from '../gen/snapshots.js';
import type { Info } from '../gen/containerd/services/snapshots/v1/Info.js';
import type { Kind as WireKind } from '../gen/containerd/services/snapshots/v1/Kind.js';
import type { SnapshotsHandlers } from '../gen/containerd/services/snapshots/v1/Snapshots.js';
import { backendNamespace } from './backend-key.js';
import type { Kind, SnapshotInfo } from './metadata/types.js';
import type { Mount } from './mounts/snapshot-mounts.js';
import type { Snapshotter } from './snapshotter.js';

export const NAMESPACE_METADATA = 'containerd-namespace';

/** Infos per List message, as containerd's own service sends them. */
const LIST_BATCH = 100;

/** containerd `identifiers.Validate`: what a namespace name may look like. */
const IDENTIFIER = /^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/;
const IDENTIFIER_MAX_LENGTH = 76;

const WIRE_KIND: Record<Kind, WireKind> = { view: 'VIEW', active: 'ACTIVE', committed: 'COMMITTED' };

export function loadSnapshotsService(): grpc.ServiceDefinition {
  const proto = loadProto<ProtoGrpcType>('containerd/services/snapshots/v1/snapshots.proto');
  return proto.containerd.services.snapshots.v1.Snapshots.service;
}

export function snapshotsHandlers(snapshotter: Snapshotter, logger: Logger): SnapshotsHandlers {
  /** One unary method: namespace, call, status. */
  function unary<Req, Res>(method: string, fn: (ns: string, req: Req) => Res | Promise<Res>, perNamespace = true): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      void (async () => {
        try {
          const ns = perNamespace ? namespaceOf(call.metadata, keyOf(call.request)) : '';
          callback(null, await fn(ns, call.request));
        } catch (err) {
          callback(failure(method, call.request, err));
        }
      })();
    };
  }

  function failure(method: string, request: unknown, err: unknown): grpc.ServerErrorResponse {
    const status = toGrpcStatus(err);
    const fields = { method, key: (request as { key?: string }).key, err };
    if (err instanceof IntegrityError && status.code !== GrpcCode.INTERNAL) logger.debug(fields, 'request refused');
    else logger.error(fields, 'request failed');
    return Object.assign(new Error(status.details), status);
  }

  return {
    Prepare: unary('Prepare', async (ns, req) => ({ mounts: toWireMounts(await snapshotter.prepare(ns, req.key, req.parent, req.labels)) })),
    View: unary('View', async (ns, req) => ({ mounts: toWireMounts(await snapshotter.view(ns, req.key, req.parent, req.labels)) })),
    Mounts: unary('Mounts', (ns, req) => ({ mounts: toWireMounts(snapshotter.mounts(ns, req.key)) })),
    Commit: unary('Commit', async (ns, req) => {
      await snapshotter.commit(ns, req.name, req.key, req.labels);
      return {};
    }),
    Remove: unary('Remove', async (ns, req) => {
      await snapshotter.remove(ns, req.key);
      return {};
    }),
    Stat: unary('Stat', (ns, req) => ({ info: toWireInfo(snapshotter.stat(ns, req.key)) })),
    Update: unary('Update', (ns, req) => {
      if (!req.info) throw new InvalidArgumentError('Update without info', { hint: 'send the snapshot name and the labels to set' });
      const info = snapshotter.update(ns, { name: req.info.name, labels: req.info.labels }, req.update_mask?.paths ?? []);
      return { info: toWireInfo(info) };
    }),
    Usage: unary('Usage', async (ns, req) => {
      const usage = await snapshotter.usage(ns, req.key);
      return { size: String(usage.size), inodes: String(usage.inodes) };
    }),
    // containerd's garbage collector calls Cleanup without a namespace; it is about the whole root anyway.
    Cleanup: unary(
      'Cleanup',
      async () => {
        await snapshotter.cleanup();
        return {};
      },
      false,
    ),
    List: (call) => {
      try {
        // containerd's garbage collector walks every backend snapshot, without a namespace.
        const ns = headerNamespace(call.metadata);
        const infos = snapshotter.list(ns, call.request.filters);
        for (let i = 0; i < infos.length; i += LIST_BATCH) {
          call.write({ info: infos.slice(i, i + LIST_BATCH).map(toWireInfo) });
        }
        call.end();
      } catch (err) {
        // grpc-js ends a server stream with the status of an 'error' event.
        call.emit('error', failure('List', call.request, err));
      }
    },
  };
}

/**
 * The namespace of a request. containerd 1.6 forwards the
 * `containerd-namespace` metadata to a proxy snapshotter only for calls that
 * start inside containerd with a namespaced context (CRI); calls of its API
 * clients (ctr, nerdctl) and of its garbage collector arrive without it. Then
 * the key says it: containerd's metadata layer prefixes every backend key
 * with its namespace. Neither: FAILED_PRECONDITION (containerd's
 * `namespaces.NamespaceRequired`); malformed: INVALID_ARGUMENT.
 */
export function namespaceOf(metadata: grpc.Metadata, key = ''): string {
  const ns = headerNamespace(metadata) ?? backendNamespace(key);
  if (ns === undefined) {
    throw new FailedPreconditionError(`namespace is required: the request has no ${NAMESPACE_METADATA} metadata and its key is not <namespace>/<n>/…`, {
      hint: 'call through containerd, or set the containerd-namespace gRPC metadata (e.g. "k8s.io")',
    });
  }
  return checkNamespace(ns);
}

/** The namespace the metadata names (checked), or undefined when it names none. */
export function headerNamespace(metadata: grpc.Metadata): string | undefined {
  const values = metadata.get(NAMESPACE_METADATA);
  const ns = values.length > 0 ? String(values[0]) : '';
  return ns === '' ? undefined : checkNamespace(ns);
}

function checkNamespace(ns: string): string {
  if (ns.length > IDENTIFIER_MAX_LENGTH || !IDENTIFIER.test(ns)) {
    throw new InvalidArgumentError(`namespace ${JSON.stringify(ns)} is not a valid containerd identifier`, {
      hint: `use letters and digits separated by single ".", "_" or "-", at most ${IDENTIFIER_MAX_LENGTH} characters`,
    });
  }
  return ns;
}

/** The key a request is about: `key` for most, the snapshot's name for Update. */
function keyOf(request: unknown): string {
  const r = request as { key?: unknown; info?: { name?: unknown } | null };
  return String(r.key ?? r.info?.name ?? '');
}

function toWireInfo(info: SnapshotInfo): Info {
  return {
    name: info.name,
    parent: info.parent,
    kind: WIRE_KIND[info.kind],
    created_at: toTimestamp(info.created),
    updated_at: toTimestamp(info.updated),
    labels: info.labels,
  };
}

function toWireMounts(mounts: readonly Mount[]) {
  return mounts.map((m) => ({ type: m.type, source: m.source, target: '', options: m.options }));
}
