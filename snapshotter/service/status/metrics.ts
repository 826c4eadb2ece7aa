/**
 * Prometheus metrics of the layer status (prom-client, a registry of our
 * own), served as text on `http://<metrics.address>/metrics` when an address
 * is configured. The gauges are set from each check's report; the refusal
 * counter counts as the mounter refuses, the layer counter as layers are built.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { FailedPreconditionError } from '../../core/errors.js';
import type { Logger } from '../../core/log.js';
import { SIGNATURE_REFUSAL_REASONS, type SignatureRefusalReason } from '../../policy/signature-policy.js';
import type { RefusalReason } from '../mounts/verity-mounter.js';
import { LAYER_SOURCES, type LayerSourceKind } from '../layers/store.js';
import { countByState, LAYER_STATES, type StatusReport } from './evaluate.js';

const REFUSAL_REASONS: readonly (RefusalReason | SignatureRefusalReason)[] = [
  'verity_unavailable', 'verification_failed', 'corrupted', 'device_conflict',
  ...SIGNATURE_REFUSAL_REASONS,
];

export class StatusMetrics {
  readonly registry = new Registry();
  private readonly layers: Gauge<'state'>;
  private readonly verityAvailable: Gauge;
  private readonly refusals: Counter<'reason'>;
  private readonly lastCheck: Gauge;
  private readonly built: Counter<'from'>;

  constructor() {
    const registers = [this.registry];
    this.layers = new Gauge({
      name: 'containerd_integrity_layers',
      help: 'Mounted layers (and refused layers kept on a corrupted device) by state: verified, corrupted, unexpected, unverified (mounted without dm-verity)',
      labelNames: ['state'],
      registers,
    });
    this.verityAvailable = new Gauge({
      name: 'containerd_integrity_verity_available',
      help: '1 when layers are mounted through dm-verity devices, 0 when the mode is off or the kernel has no device-mapper',
      registers,
    });
    this.refusals = new Counter({
      name: 'containerd_integrity_layer_refusals_total',
      help: `Layers refused, by reason: mounts (verity_unavailable, verification_failed, corrupted, device_conflict) and conversions of signed images (${SIGNATURE_REFUSAL_REASONS.join(', ')})`,
      labelNames: ['reason'],
      registers,
    });
    this.lastCheck = new Gauge({
      name: 'containerd_integrity_status_check_timestamp_seconds',
      help: 'When the last layer status check finished (Unix time)',
      registers,
    });
    this.built = new Counter({
      name: 'containerd_integrity_layers_built_total',
      help: 'Image layers built, by where their bytes came from: registry (fetched by the snapshotter), containerd (its content store), upper (what containerd unpacked, re-encoded)',
      labelNames: ['from'],
      registers,
    });
    // Every series exists from the start, so a rate over a first refusal is not lost.
    for (const reason of REFUSAL_REASONS) this.refusals.inc({ reason }, 0);
    for (const from of LAYER_SOURCES) this.built.inc({ from }, 0);
    for (const state of LAYER_STATES) this.layers.set({ state }, 0);
  }

  update(report: StatusReport, verityInUse: boolean): void {
    for (const [state, count] of Object.entries(countByState(report))) this.layers.set({ state }, count);
    this.verityAvailable.set(verityInUse ? 1 : 0);
    this.lastCheck.set(Date.now() / 1000);
  }

  refused(reason: RefusalReason | SignatureRefusalReason): void {
    this.refusals.inc({ reason });
  }

  layerBuilt(from: LayerSourceKind): void {
    this.built.inc({ from });
  }
}

export interface MetricsServer {
  /** The address actually bound (port 0 in the config picks one). */
  readonly address: string;
  close(): Promise<void>;
}

/** Serves GET /metrics on `address` (host:port). */
export async function serveMetrics(address: string, registry: Registry, logger: Logger): Promise<MetricsServer> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(colon + 1));
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('only /metrics here\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => {
        logger.error({ err }, 'cannot render metrics');
        response.writeHead(500).end();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new FailedPreconditionError(`cannot serve metrics on ${address}: ${err.code ?? err.message}`, {
        hint: 'choose a free port for metrics.address, or "" to serve no metrics',
        cause: err,
      })),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = server.address();
  const actual = bound && typeof bound === 'object' ? `${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}` : address;
  return {
    address: actual,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
