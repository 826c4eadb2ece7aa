/**
 * Wiring of the snapshotter daemon: config → store, layers, mounts,
 * snapshotter → gRPC server on a unix socket. No logic of its own beyond
 * claiming the socket.
 */
import * as grpc from '@grpc/grpc-js';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { wallClock } from '../core/clock.js';
import type { SnapshotterConfig } from '../core/config.js';
import { FailedPreconditionError, isNotFound } from '../core/errors.js';
import type { Logger } from '../core/log.js';
import { containerdSeams } from './containerd/seams.js';
import { ErofsLayerStore } from './layers/erofs-store.js';
import { readXattrs } from './layers/xattrs.js';
import { RootLayout } from './layout.js';
import { SqliteMetadataStore } from './metadata/sqlite.js';
import { lockRoot } from './root-lock.js';
import { ErofsMounter } from './mounts/erofs-mounter.js';
import { MountManager } from './mounts/manager.js';
import { mountableLayer } from './mounts/mountable-layer.js';
import { probeVerity } from './mounts/verity-device.js';
import { snapshotterScope } from './mounts/verity-identity.js';
import { VerityMounter } from './mounts/verity-mounter.js';
import { StatusMetrics } from './status/metrics.js';
import { startStatusMonitor, type StatusMonitor } from './status/monitor.js';
import { loadSnapshotsService, snapshotsHandlers } from './service.js';
import { Snapshotter } from './snapshotter.js';
import { UnpackScratch } from './unpack-scratch.js';
import { tmpfsScratchMounter } from './mounts/scratch-tmpfs.js';
import { loadDaemonTrustRoots } from './trust/roots.js';

export interface RunningDaemon {
  readonly address: string;
  /** Where Prometheus metrics are served (metrics.address, with the port bound), if anywhere. */
  readonly metricsAddress: string | undefined;
  /** Stops serving and closes the database. Layer mounts stay: containers use them, and start-up adopts them. */
  close(): Promise<void>;
  /** Reads signatures.trust_dirs again (SIGHUP); if that fails, the roots loaded before stay and the error is logged. */
  reloadTrustRoots(): Promise<void>;
}

export async function startSnapshotterDaemon(config: SnapshotterConfig, logger: Logger): Promise<RunningDaemon> {
  const layout = new RootLayout(config.root);
  await mkdir(config.root, { recursive: true, mode: 0o711 });
  // Before anything touches the root: start-up cleanup would disturb a live daemon.
  const lock = lockRoot(layout.lock, config.root);
  try {
    await claimSocket(config.address);
  } catch (err) {
    lock.release();
    throw err;
  }
  const store = new SqliteMetadataStore(layout.database, { clock: wallClock() });
  let monitor: StatusMonitor | undefined;
  let scratch: UnpackScratch | undefined;
  let closeContainerd = () => {};
  try {
    const plain = new ErofsMounter(config.mounts.backing);
    const verity = await probeVerity();
    const metrics = new StatusMetrics();
    const scope = snapshotterScope(config.root);
    const mounter = new VerityMounter({
      mode: config.verity,
      availability: verity,
      plain,
      scope,
      imageOf: (id) => layout.image(id),
      logger,
      onRefusal: (reason) => metrics.refused(reason),
    });
    const mounts = new MountManager({ dir: config.mounts.dir, layerOf: (id) => mountableLayer(layout, store, id), mounter, logger, idleGraceMs: config.mounts.idleSeconds * 1000 });
    const layers = new ErofsLayerStore({ xattrs: readXattrs, logger });
    const trustRoots = await loadDaemonTrustRoots(config.signatures.trustDirs, logger);
    const containerd = containerdSeams(config, logger, { trustRoots, onRefusal: (reason) => metrics.refused(reason) });
    closeContainerd = containerd.close;
    if (config.unpack.memoryMib > 0) {
      scratch = new UnpackScratch({ dir: layout.unpackScratch, limitBytes: config.unpack.memoryMib * 1024 * 1024, mounter: tmpfsScratchMounter, logger });
      await scratch.start();
    }
    const snapshotter = new Snapshotter({
      layout,
      store,
      layers,
      mounts,
      logger,
      blobs: containerd.blobs,
      ...(containerd.registry ? { registry: containerd.registry } : {}),
      ...(scratch ? { scratch } : {}),
      rootfs: containerd.rootfs,
      trust: containerd.trust,
      onLayerBuilt: (from) => metrics.layerBuilt(from),
    });
    await snapshotter.start();
    monitor = await startStatusMonitor({ config, layout, store, scope, verity, verityInUse: mounter.verity, metrics, logger });

    const server = new grpc.Server();
    server.addService(loadSnapshotsService(), snapshotsHandlers(snapshotter, logger));
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${config.address}`, grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    // Only root (containerd) talks to the snapshotter.
    await chmod(config.address, 0o600);
    logger.info(
      {
        address: config.address,
        root: config.root,
        mounts: config.mounts.dir,
        backing: plain.backing,
        verity: config.verity,
        dmVerity: mounter.verity,
        metrics: monitor.metricsAddress,
      },
      'snapshotter serving',
    );
    const running = monitor;

    return {
      address: config.address,
      metricsAddress: running.metricsAddress,
      close: async () => {
        await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
        await snapshotter.close();
        await scratch?.close();
        await running.close();
        closeContainerd();
        store.close();
        await unlink(config.address).catch(() => undefined);
        lock.release();
        logger.info('snapshotter stopped');
      },
      reloadTrustRoots: async () => {
        try {
          containerd.trust.setTrustRoots(await loadDaemonTrustRoots(config.signatures.trustDirs, logger));
        } catch (err) {
          logger.error({ err }, 'cannot reload the trust roots; the ones loaded before stay in use');
        }
      },
    };
  } catch (err) {
    closeContainerd();
    await scratch?.close().catch(() => undefined);
    await monitor?.close();
    store.close();
    lock.release();
    throw err;
  }
}

/** A socket file left by a dead daemon is replaced; one that answers belongs to a live daemon. */
async function claimSocket(address: string): Promise<void> {
  await mkdir(dirname(address), { recursive: true, mode: 0o711 });
  let st;
  try {
    st = await lstat(address);
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  if (!st.isSocket()) {
    throw new FailedPreconditionError(`${address} exists and is not a socket`, { hint: 'remove it or choose another address' });
  }
  if (await answers(address)) {
    throw new FailedPreconditionError(`another process already serves ${address}`, {
      hint: 'stop the other snapshotter (systemctl stop containerd-integrity-snapshotter) or choose another address',
    });
  }
  await unlink(address);
}

function answers(address: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
