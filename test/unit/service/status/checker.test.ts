import test from 'ava';
import { Writable } from 'node:stream';
import { FailedPreconditionError } from '../../../../snapshotter/core/errors.js';
import { createLogger, silentLogger } from '../../../../snapshotter/core/log.js';
import { StatusChecker } from '../../../../snapshotter/service/status/checker.js';
import { serveMetrics, StatusMetrics } from '../../../../snapshotter/service/status/metrics.js';
import type { LayerObservation, NodeObservation } from '../../../../snapshotter/service/status/observe.js';

const missing = { available: false as const, reason: 'no device-mapper', hint: undefined };

/** A layer mounted without dm-verity (all a kernel without device-mapper can show). */
function plainLayer(id: number): LayerObservation {
  return {
    id,
    record: { id, namespace: 'default', name: `sha256:${id}`, rootHash: '00'.repeat(32), images: [] },
    mounts: [{ id, parentId: 1, root: '/', mountPoint: `/m/${id}`, fsType: 'erofs', source: `/dev/loop${id}`, superOptions: 'ro' }],
    device: undefined,
    foreignDevice: false,
    expectation: { rootHash: '00'.repeat(32), dataBlocks: 1, image: undefined, hashTree: undefined },
  };
}

function logCapture() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger('test', { level: 'info', destination }) };
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('each check sets the gauges; a layer is logged when its state changes, not every time', async (t) => {
  const observations: NodeObservation[] = [
    { verity: missing, layers: [plainLayer(1)], others: [] },
    { verity: missing, layers: [plainLayer(1)], others: [] },
    { verity: missing, layers: [plainLayer(1), plainLayer(2)], others: [] },
  ];
  const { lines, logger } = logCapture();
  const metrics = new StatusMetrics();
  const checker = new StatusChecker({ intervalSeconds: 0, observe: async () => observations.shift()!, mode: 'auto', scope: 's', verityInUse: false, metrics, logger });
  await checker.check();
  await checker.check();
  t.deepEqual(lines.map((l) => [l.msg, l.layer]), [['layer mounted without dm-verity', 1]]);
  const report = await checker.check();
  t.deepEqual(lines.map((l) => [l.msg, l.layer]), [['layer mounted without dm-verity', 1], ['layer mounted without dm-verity', 2]]);
  t.true(report.ok);
  const text = await metrics.registry.metrics();
  t.is(metricValue(text, 'containerd_integrity_layers{state="unverified"}'), 2);
  t.is(metricValue(text, 'containerd_integrity_layers{state="verified"}'), 0);
  t.is(metricValue(text, 'containerd_integrity_verity_available'), 0);
  t.true(metricValue(text, 'containerd_integrity_status_check_timestamp_seconds')! > 1.7e9);
});

test('under required a plain mount is an error in the log', async (t) => {
  const { lines, logger } = logCapture();
  const checker = new StatusChecker({
    intervalSeconds: 0,
    observe: async () => ({ verity: missing, layers: [plainLayer(3)], others: [] }),
    mode: 'required',
    scope: 's',
    verityInUse: false,
    metrics: new StatusMetrics(),
    logger,
  });
  t.false((await checker.check()).ok);
  t.like(lines[0], { level: 50, layer: 3, state: 'unexpected', msg: 'layer not as expected' });
});

test('a failing check is logged and the next one runs; stop waits for a running check', async (t) => {
  const { lines, logger } = logCapture();
  let calls = 0;
  const checker = new StatusChecker({
    intervalSeconds: 0.05,
    observe: async () => {
      calls++;
      if (calls === 1) throw new Error('mountinfo unreadable');
      return { verity: missing, layers: [], others: [] };
    },
    mode: 'auto',
    scope: 's',
    verityInUse: false,
    metrics: new StatusMetrics(),
    logger,
  });
  await checker.start();
  await new Promise((r) => setTimeout(r, 200));
  await checker.stop();
  t.true(calls >= 2, `${calls} checks`);
  t.like(lines[0], { level: 50, msg: 'layer status check failed' });
  const after = calls;
  await new Promise((r) => setTimeout(r, 120));
  t.is(calls, after, 'no check after stop');
});

test('refusals count by reason, every reason present from the start', async (t) => {
  const metrics = new StatusMetrics();
  metrics.refused('corrupted');
  metrics.refused('corrupted');
  const text = await metrics.registry.metrics();
  t.is(metricValue(text, 'containerd_integrity_layer_refusals_total{reason="corrupted"}'), 2);
  t.is(metricValue(text, 'containerd_integrity_layer_refusals_total{reason="verity_unavailable"}'), 0);
});

test('metrics are served on /metrics only; a taken port is refused with the fix', async (t) => {
  const metrics = new StatusMetrics();
  metrics.refused('verification_failed');
  const server = await serveMetrics('127.0.0.1:0', metrics.registry, silentLogger);
  t.teardown(() => server.close());
  t.regex(server.address, /^127\.0\.0\.1:\d+$/);
  const ok = await fetch(`http://${server.address}/metrics`);
  t.is(ok.status, 200);
  t.regex(ok.headers.get('content-type') ?? '', /^text\/plain/);
  t.is(metricValue(await ok.text(), 'containerd_integrity_layer_refusals_total{reason="verification_failed"}'), 1);
  t.is((await fetch(`http://${server.address}/`)).status, 404);
  const err = await t.throwsAsync(serveMetrics(server.address, metrics.registry, silentLogger), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, /cannot serve metrics on 127\.0\.0\.1:\d+: EADDRINUSE/);
  t.regex(err!.hint!, /metrics\.address/);
});
