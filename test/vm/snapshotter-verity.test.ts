/**
 * The snapshotter with verity = "required" under containerd 1.6, in the VM
 * (see guest/snapshotter-verity.ts): containers run on verity-backed layers,
 * a restart adopts them, and a layer file modified on disk gets the image's
 * next containers refused, with status and metrics saying so.
 */
import type { ExecutionContext } from 'ava';
import type { LayerStatus, StatusReport } from '../../snapshotter/service/status/evaluate.js';
import type { CliResult } from '../support/cli-in-process.js';
import type { SnapshotterVerityReport } from './guest/snapshotter-verity.js';
import { runGuestReport, vmTest } from './support/vm-test.js';

function status(t: ExecutionContext, run: CliResult, exitStatus: number): StatusReport {
  t.is(run.status, exitStatus, run.stderr);
  return JSON.parse(run.stdout) as StatusReport;
}

function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const devices = (layers: readonly LayerStatus[]) => layers.map((l) => [l.id, l.device?.name, l.device?.node]);

vmTest('snapshotter + containerd: containers on dm-verity layers, adopted on restart, refused after a layer file is modified', async (t) => {
  const r = await runGuestReport<SnapshotterVerityReport>(t, 'snapshotter-verity', 180_000);

  t.is(r.firstRun.exitCode, 0, r.firstRun.error);
  t.regex(r.firstRun.stdout, /^a file the test corrupts on disk: /);

  const running = status(t, r.statusRunning, 0);
  t.like(running.verity, { mode: 'required', available: true });
  t.is(running.layers.length, 2, 'busybox and the data layer');
  for (const layer of running.layers) {
    t.like(layer, { state: 'verified', rootHashMatches: true, namespace: 'k8s.io' }, JSON.stringify(layer));
    t.is(layer.device?.status, 'V');
    t.regex(layer.device?.node ?? '', /^\/dev\/dm-\d+$/);
    t.is(layer.device?.name, `integrity-${layer.expectedRootHash}-${layer.device?.name.slice(-16)}`);
  }
  t.is(metric(r.metricsRunning, 'containerd_integrity_layers{state="verified"}'), 2);
  t.is(metric(r.metricsRunning, 'containerd_integrity_verity_available'), 1);

  const restarted = status(t, r.restart.statusAfter, 0);
  t.deepEqual(devices(restarted.layers), devices(running.layers), 'the same devices after the restart');
  t.true(restarted.layers.every((l) => l.state === 'verified'));
  t.true(r.restart.keeperAlive, 'the running container kept its root');
  t.deepEqual(r.restart.replacedLogLines, [], 'nothing replaced or refused at start-up');

  t.truthy(r.tamperedLayer);
  t.regex(r.execAfterTamper.error, /Input\/output error/, 'the running container reads EIO from the flipped block');
  const corrupted = status(t, r.statusMountedCorrupted, 1);
  const bad = corrupted.layers.find((l) => l.state === 'corrupted');
  t.like(bad, { device: { status: 'C' }, rootHashMatches: true });
  t.truthy(bad?.mountPoint);
  t.is(corrupted.layers.filter((l) => l.state === 'verified').length, 1, 'the other layer is untouched');

  t.is(r.refusedWhileMounted.exitCode, 1);
  t.regex(r.refusedWhileMounted.error, /layer ".*" in namespace "k8s\.io" is refused: its dm-verity device integrity-[0-9a-f]{64}-[0-9a-f]{16} found a block that does not match root hash [0-9a-f]{64} \(status C\)/);
  t.regex(r.refusedWhileMounted.error, /failed precondition/);

  t.deepEqual(status(t, r.statusIdle, 0).layers, [], 'the layers were unmounted and their devices removed');
  t.is(r.refusedFresh.exitCode, 1);
  t.regex(r.refusedFresh.error, /dm-verity refuses layer ".*" in namespace "k8s\.io" \(\/var\/lib\/containerd-integrity\/snapshots\/\d+\/layer\.erofs\): its data block \d+ does not match expected root hash [0-9a-f]{64}/);
  t.regex(r.refusedFresh.error, /pull it again/);

  const after = status(t, r.statusAfterTamper, 1);
  t.false(after.ok);
  t.is(after.layers.length, 1);
  t.like(after.layers[0], { id: bad?.id, state: 'corrupted', mountPoint: null, device: { status: 'C' } });

  t.is(metric(r.metricsAfterTamper, 'containerd_integrity_layers{state="corrupted"}'), 1);
  t.is(metric(r.metricsAfterTamper, 'containerd_integrity_layer_refusals_total{reason="corrupted"}'), 1);
  t.is(metric(r.metricsAfterTamper, 'containerd_integrity_layer_refusals_total{reason="verification_failed"}'), 1);
  t.is(r.refusalLogLines.length, 2, r.daemonLog);
  t.regex(r.refusalLogLines.join('\n'), /"reason":"corrupted"[\s\S]*"reason":"verification_failed"/);
});
