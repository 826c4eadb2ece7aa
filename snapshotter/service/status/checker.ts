/**
 * The daemon's periodic layer check: observe, evaluate, update the metrics,
 * and log each layer whose state changed (a layer turning corrupted or
 * unexpected is an error; one mounted without dm-verity a warning), so a
 * node never degrades silently. Runs once at start-up, then every
 * `status.interval_seconds`.
 */
import type { VerityMode } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import { countByState, evaluateStatus, type LayerState, type LayerStatus, type StatusReport } from './evaluate.js';
import type { StatusMetrics } from './metrics.js';
import type { NodeObservation } from './observe.js';

export interface StatusCheckerOptions {
  intervalSeconds: number;
  observe(): Promise<NodeObservation>;
  mode: VerityMode;
  scope: string;
  /** Whether the mounter puts layers on dm-verity devices (for the availability gauge). */
  verityInUse: boolean;
  metrics: StatusMetrics;
  logger: Logger;
}

export class StatusChecker {
  private readonly options: StatusCheckerOptions;
  private readonly seen = new Map<number, LayerState>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(options: StatusCheckerOptions) {
    this.options = options;
  }

  /** One check now; the report it made. */
  async check(): Promise<StatusReport> {
    const { mode, scope, metrics, verityInUse } = this.options;
    const report = evaluateStatus(await this.options.observe(), mode, scope);
    metrics.update(report, verityInUse);
    this.logChanges(report);
    return report;
  }

  /** Checks once, then every interval (none when the interval is 0). */
  async start(): Promise<void> {
    await this.runLogged();
    const seconds = this.options.intervalSeconds;
    if (seconds > 0) {
      // Unreferenced: the timer alone must not keep the process alive; skipped while a check still runs.
      this.timer = setInterval(() => {
        if (!this.running) void this.runLogged();
      }, seconds * 1000).unref();
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  private async runLogged(): Promise<void> {
    this.running = this.check()
      .catch((err: unknown) => this.options.logger.error({ err }, 'layer status check failed'))
      .finally(() => (this.running = undefined));
    await this.running;
  }

  private logChanges(report: StatusReport): void {
    const { logger } = this.options;
    const current = new Set<number>();
    for (const layer of report.layers) {
      current.add(layer.id);
      if (this.seen.get(layer.id) === layer.state) continue;
      const first = !this.seen.has(layer.id);
      this.seen.set(layer.id, layer.state);
      const fields = logFields(layer);
      if (layer.state === 'corrupted') logger.error(fields, 'layer corrupted: its dm-verity device found a block that does not match');
      else if (layer.state === 'unexpected') logger.error(fields, 'layer not as expected');
      else if (layer.state === 'unverified') logger.warn(fields, 'layer mounted without dm-verity');
      else if (!first) logger.info(fields, 'layer verified again');
    }
    for (const id of this.seen.keys()) if (!current.has(id)) this.seen.delete(id);
    logger.debug({ ...countByState(report), ok: report.ok }, 'layer status checked');
  }
}

function logFields(layer: LayerStatus): Record<string, unknown> {
  return {
    layer: layer.id,
    ns: layer.namespace,
    chainId: layer.name,
    state: layer.state,
    device: layer.device?.name,
    problems: layer.problems,
  };
}
