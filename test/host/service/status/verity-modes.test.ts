/**
 * The daemon on this kernel, which has no device-mapper: with verity = "auto"
 * layers mount without dm-verity, each with a warning, and status and the
 * metrics report them as unverified; with verity = "required" every layer
 * mount is refused with FAILED_PRECONDITION naming the layer and the fix —
 * also a new user of a layer a previous run mounted — and status fails.
 * Real daemon, real EROFS layers and mounts, a gRPC client like containerd,
 * and the real `integrityctl status` binary.
 */
import test, { type ExecutionContext } from 'ava';
import * as grpc from '@grpc/grpc-js';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { loadSnapshotterConfig } from '../../../../snapshotter/core/config.js';
import { createLogger } from '../../../../snapshotter/core/log.js';
import { loadProto } from '../../../../snapshotter/core/proto.js';
import type { ProtoGrpcType } from '../../../../snapshotter/gen/snapshots.js';
import type { SnapshotsClient } from '../../../../snapshotter/gen/containerd/services/snapshots/v1/Snapshots.js';
import { startSnapshotterDaemon, type RunningDaemon } from '../../../../snapshotter/service/daemon.js';
import { parseMountInfo } from '../../../../snapshotter/service/mounts/mountinfo.js';
import type { StatusReport } from '../../../../snapshotter/service/status/evaluate.js';
import { nativeAddonMissing } from '../../../support/native-addon.js';

const MAIN = fileURLToPath(new URL('../../../../snapshotter/cli/main.js', import.meta.url));

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (layer mounts)';
  if (existsSync('/dev/mapper/control')) return 'this kernel has device-mapper: these tests are about one without it (the VM tests cover dm-verity)';
  return nativeAddonMissing();
}

const skip = skipReason();
if (skip) test('verity modes without device-mapper', (t) => t.pass(`skipped: ${skip}`));
const hostTest = skip ? test.skip : test.serial;

interface Fixture {
  dir: string;
  configFile(verity: string): string;
  start(configFile: string): Promise<{ daemon: RunningDaemon; logs: Record<string, unknown>[] }>;
  client: () => SnapshotsClient;
}

function setup(t: ExecutionContext): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'verity-modes-'));
  const daemons: RunningDaemon[] = [];
  const clients: SnapshotsClient[] = [];
  t.teardown(async () => {
    for (const c of clients) c.close();
    for (const d of daemons) await d.close();
    const mounts = parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(`${dir}/`));
    for (const m of mounts.reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    configFile(verity) {
      const file = join(dir, `${verity}.toml`);
      writeFileSync(
        file,
        [`root = "${join(dir, 'root')}"`, `address = "${join(dir, 's.sock')}"`, `verity = "${verity}"`, '[status]', 'interval_seconds = 1', '[metrics]', 'address = "127.0.0.1:0"'].join('\n'),
      );
      return file;
    },
    async start(configFile) {
      const logs: Record<string, unknown>[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _encoding, done) {
          for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line) as Record<string, unknown>);
          done();
        },
      });
      const daemon = await startSnapshotterDaemon(loadSnapshotterConfig(configFile), createLogger('snapshotter', { level: 'info', destination }));
      daemons.push(daemon);
      return { daemon, logs };
    },
    client() {
      const proto = loadProto<ProtoGrpcType>('containerd/services/snapshots/v1/snapshots.proto');
      const client = new proto.containerd.services.snapshots.v1.Snapshots(`unix:${join(dir, 's.sock')}`, grpc.credentials.createInsecure());
      clients.push(client);
      return client;
    },
  };
}

function call<T>(client: SnapshotsClient, method: 'Prepare' | 'Commit' | 'Remove', request: object): Promise<T> {
  const metadata = new grpc.Metadata();
  metadata.set('containerd-namespace', 'default');
  const fn = (client[method] as unknown as (r: object, m: grpc.Metadata, cb: (e: grpc.ServiceError | null, r?: unknown) => void) => void).bind(client);
  return new Promise((resolve, reject) => fn(request, metadata, (err, res) => (err ? reject(err) : resolve(res as T))));
}

/** A committed layer `name` holding one file, built the way containerd unpacks: Prepare, write into the upper dir, Commit. */
async function commitLayer(client: SnapshotsClient, name: string): Promise<void> {
  const { mounts } = await call<{ mounts: { type: string; source: string }[] }>(client, 'Prepare', { key: `${name}-extract` });
  writeFileSync(join(mounts[0]!.source, 'hello'), `hello from ${name}\n`);
  await call(client, 'Commit', { name, key: `${name}-extract` });
}

function status(configFile: string): { code: number | null; report: StatusReport; text: string } {
  const json = spawnSync(process.execPath, [MAIN, 'status', '--config', configFile, '--json'], { encoding: 'utf8' });
  const text = spawnSync(process.execPath, [MAIN, 'status', '--config', configFile], { encoding: 'utf8' });
  return { code: json.status, report: JSON.parse(json.stdout) as StatusReport, text: text.stdout };
}

async function metrics(daemon: RunningDaemon): Promise<string> {
  await new Promise((r) => setTimeout(r, 1500));
  return (await fetch(`http://${daemon.metricsAddress}/metrics`)).text();
}

function metric(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

hostTest('auto mounts layers without dm-verity, warns per layer and reports them; required then refuses every new user', async (t) => {
  const f = setup(t);
  const autoConfig = f.configFile('auto');
  const { daemon, logs } = await f.start(autoConfig);
  t.like(logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('dm-verity is not available')), { level: 40, verity: 'auto' });
  const client = f.client();
  await commitLayer(client, 'layer1');
  await call(client, 'Prepare', { key: 'c1', parent: 'layer1' });
  t.like(logs.find((l) => l.msg === 'layer mounted WITHOUT dm-verity: it is not available (verity = "auto")'), {
    level: 40,
    ns: 'default',
    chainId: 'layer1',
  });

  const auto = status(autoConfig);
  t.is(auto.code, 0, 'unverified layers do not fail status under auto');
  t.like(auto.report.verity, { mode: 'auto', available: false });
  t.is(auto.report.layers.length, 1);
  t.like(auto.report.layers[0], { namespace: 'default', name: 'layer1', state: 'unverified', device: null, rootHashMatches: null });
  t.regex(auto.text, /^dm-verity: NOT available \(.*device-mapper is not available in this kernel.*\); verity = "auto"$/m);
  t.regex(auto.text, /^\d+\s+unverified\s+-\s+-\s+none\s+default\s+layer1\s+-\s+none$/m);
  t.regex(auto.text, /mounted without dm-verity/);
  const autoMetrics = await metrics(daemon);
  t.is(metric(autoMetrics, 'containerd_integrity_layers{state="unverified"}'), 1);
  t.is(metric(autoMetrics, 'containerd_integrity_verity_available'), 0);

  // The same root under required: the layer c1 holds stays for it, but gets no new user.
  await daemon.close();
  const requiredConfig = f.configFile('required');
  const required = await f.start(requiredConfig);
  t.like(required.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('dm-verity is not available')), { level: 50, msg: 'dm-verity is not available: every layer mount will be refused' });
  const err = (await t.throwsAsync(call(f.client(), 'Prepare', { key: 'c2', parent: 'layer1' }))) as grpc.ServiceError;
  t.is(err.code, grpc.status.FAILED_PRECONDITION);
  t.regex(err.details, /^cannot mount layer "layer1" in namespace "default": verity = "required", but .*device-mapper is not available in this kernel/);
  t.regex(err.details, /set verity = "auto"/);
  const unexpected = status(requiredConfig);
  t.is(unexpected.code, 1, 'a layer without dm-verity fails status under required');
  t.like(unexpected.report.layers[0], { state: 'unexpected', problems: ['mounted without dm-verity although verity = "required"'] });

  // Once unmounted, mounting it again is refused too, and nothing stays mounted.
  await call(f.client(), 'Remove', { key: 'c1' });
  await t.throwsAsync(call(f.client(), 'Prepare', { key: 'c3', parent: 'layer1' }), { message: /verity = "required"/ });
  const none = status(requiredConfig);
  t.is(none.code, 0);
  t.deepEqual(none.report.layers, []);
  t.is(metric(await metrics(required.daemon), 'containerd_integrity_layer_refusals_total{reason="verity_unavailable"}'), 2);
});
