/**
 * The daemon's layer monitoring, wired from the configuration: the periodic
 * StatusChecker over observeNode(), and the metrics listener when
 * `metrics.address` is set. Start it after the mounts were restored.
 */
import type { SnapshotterConfig } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import type { RootLayout } from '../layout.js';
import type { MetadataStore } from '../metadata/store.js';
import type { VerityAvailability } from '../mounts/verity-device.js';
import { StatusChecker } from './checker.js';
import { serveMetrics, type StatusMetrics } from './metrics.js';
import { observeNode } from './observe.js';

export interface StatusMonitorOptions {
  config: SnapshotterConfig;
  layout: RootLayout;
  store: Pick<MetadataStore, 'committedLayer'>;
  /** snapshotterScope(root). */
  scope: string;
  verity: VerityAvailability;
  verityInUse: boolean;
  metrics: StatusMetrics;
  logger: Logger;
}

export interface StatusMonitor {
  /** Where /metrics is served, if anywhere. */
  readonly metricsAddress: string | undefined;
  close(): Promise<void>;
}

export async function startStatusMonitor(options: StatusMonitorOptions): Promise<StatusMonitor> {
  const { config, layout, store, scope, verity, metrics, logger } = options;
  const checker = new StatusChecker({
    intervalSeconds: config.status.intervalSeconds,
    observe: () => observeNode({ layout, mountsDir: config.mounts.dir, scope, records: store, verity }),
    mode: config.verity,
    scope,
    verityInUse: options.verityInUse,
    metrics,
    logger,
  });
  await checker.start();
  try {
    const server = config.metrics.address ? await serveMetrics(config.metrics.address, metrics.registry, logger) : undefined;
    return {
      metricsAddress: server?.address,
      close: async () => {
        await checker.stop();
        await server?.close();
      },
    };
  } catch (err) {
    await checker.stop();
    throw err;
  }
}
