/**
 * Guest program: the snapshotter with `verity = "required"` under a private
 * containerd 1.6, in the VM (the host has no device-mapper).
 *
 *   node snapshotter-verity.js <report.json>
 *
 * Imports an image through the snapshotter (ctr import: every layer becomes
 * layer.erofs + layer.verity), runs a container on it, keeps a second one
 * running while `integrityctl status` and the metrics look at its layers,
 * restarts the daemon under the running container (the mounts and devices
 * must be adopted, not replaced), then flips one byte of a file in a layer
 * file on disk. The running container's read of it fails (EIO) and turns the
 * device C; a new container of the image is refused while the layer is
 * mounted, and again once the layer has to be set up anew (its device then
 * fails verification and is kept) — with the reason in ctr's error and in
 * the snapshotter's log; status and metrics report the layer corrupted.
 *
 * The daemon runs in this process (startSnapshotterDaemon, what `integrityctl
 * snapshotter serve` calls) and the CLI through test/support/cli-in-process.ts:
 * under TCG every node start that loads the CLI costs ~10 s. Records what it
 * saw for test/vm/snapshotter-verity.test.ts; exits non-zero only when a step
 * could not run. Import only its types: loading it runs it.
 */
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadSnapshotterConfig } from '../../../snapshotter/core/config.js';
import { createLogger } from '../../../snapshotter/core/log.js';
import { startSnapshotterDaemon, type RunningDaemon } from '../../../snapshotter/service/daemon.js';
import type { StatusReport } from '../../../snapshotter/service/status/evaluate.js';
import { runCli, type CliResult } from '../../support/cli-in-process.js';
import { CommandError } from '../../support/command.js';
import { Containerd } from '../../support/containerd.js';
import { busyboxImage } from '../../support/oci-image.js';
import { dropCaches, flipByte } from '../support/guest-io.js';

const IMAGE = 'integrity.test/app:v1';
const SECRET = `a file the test corrupts on disk: ${'0123456789abcdef'.repeat(64)}\n`;
const MARKER = 'a file the test corrupts on disk: ';
const ROOT = '/var/lib/containerd-integrity';
const SOCKET = '/run/containerd-integrity/snapshotter.sock';
const METRICS = '127.0.0.1:9469';
const CHECK_INTERVAL_S = 1;

export interface RunResult {
  stdout: string;
  error: string;
  exitCode: number | null;
}

export interface SnapshotterVerityReport {
  firstRun: RunResult;
  statusRunning: CliResult;
  metricsRunning: string;
  restart: { statusAfter: CliResult; keeperAlive: boolean; replacedLogLines: string[] };
  tamperedLayer: { file: string; offset: number } | undefined;
  /** The running container reads the flipped block. */
  execAfterTamper: RunResult;
  statusMountedCorrupted: CliResult;
  /** A new container while the corrupted layer is still mounted (for the first one). */
  refusedWhileMounted: RunResult;
  /** Status once the first container is gone and containerd's GC removed its snapshot. */
  statusIdle: CliResult;
  /** A new container once the layer has to be mounted again. */
  refusedFresh: RunResult;
  statusAfterTamper: CliResult;
  metricsAfterTamper: string;
  refusalLogLines: string[];
  daemonLog: string;
}

/** A ctr call's outcome; a failure is an outcome here, not an error. */
async function outcome(call: () => Promise<{ stdout: string }>): Promise<RunResult> {
  try {
    return { stdout: (await call()).stdout, error: '', exitCode: 0 };
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    return { stdout: err.stdout, error: err.stderr, exitCode: err.exitCode };
  }
}

/** containerd removes a deleted container's snapshot in its GC, a moment later: wait until no layer is mounted. */
async function waitUntilNoLayerMounted(): Promise<CliResult> {
  for (let i = 0; ; i++) {
    const status = await runCli(statusArgs);
    const report = JSON.parse(status.stdout) as StatusReport;
    if (report.layers.every((l) => l.mountPoint === null) || i === 100) return status;
    await sleep(200);
  }
}

async function metrics(): Promise<string> {
  // Let the periodic check run after the last change.
  await sleep(CHECK_INTERVAL_S * 1500);
  const response = await fetch(`http://${METRICS}/metrics`);
  return response.text();
}

const reportFile = process.argv[2];
if (!reportFile) throw new Error('usage: snapshotter-verity.js <report.json>');

const work = mkdtempSync('/tmp/snapshotter-verity-');
const configFile = join(work, 'snapshotter.toml');
writeFileSync(
  configFile,
  [
    `root = "${ROOT}"`,
    `address = "${SOCKET}"`,
    'verity = "required"',
    '[log]',
    'level = "debug"',
    '[status]',
    `interval_seconds = ${CHECK_INTERVAL_S}`,
    '[metrics]',
    `address = "${METRICS}"`,
    // The test watches the last container's layers go; a grace period would only make it wait.
    '[mounts]',
    'idle_seconds = 0',
  ].join('\n'),
);
const logFile = join(work, 'snapshotter.log');
const log = createWriteStream(logFile, { flags: 'a' });
const config = loadSnapshotterConfig(configFile);
const startDaemon = () => startSnapshotterDaemon(config, createLogger('snapshotter', { level: config.log.level, destination: log }));
const statusArgs = ['status', '--config', configFile, '--json'];
const daemonLog = () => readFileSync(logFile, 'utf8');

let daemon: RunningDaemon = await startDaemon();
const containerd = await Containerd.start({ snapshotter: 'integrity', proxySnapshotters: { integrity: SOCKET } });
let report: SnapshotterVerityReport;
try {
  mkdirSync(join(work, 'images'));
  await busyboxImage(join(work, 'images', 'app'), { tag: 'v1', layers: [[{ path: 'data/' }, { path: 'data/secret', data: SECRET }]] });
  await containerd.importLayout(join(work, 'images', 'app'), 'integrity.test/app');
  const firstRun = await outcome(() => containerd.run(IMAGE, ['/bin/cat', '/data/secret']));

  await containerd.ctr(['run', '-d', '--snapshotter', 'integrity', IMAGE, 'keeper', '/bin/sleep', '600']);
  const statusRunning = await runCli(statusArgs);
  const metricsRunning = await metrics();

  // A restart under the running container: its layers' mounts and devices are adopted.
  const logBefore = daemonLog().length;
  await daemon.close();
  daemon = await startDaemon();
  const statusAfter = await runCli(statusArgs);
  const tasks = (await containerd.ctr(['tasks', 'list'])).stdout;
  const replacedLogLines = daemonLog().slice(logBefore).split('\n').filter((l) => /replacing|cannot mount|layer refused/.test(l));

  // One flipped byte in the data of /data/secret, in the layer file on disk.
  let tamperedLayer: SnapshotterVerityReport['tamperedLayer'];
  const snapshots = join(ROOT, 'snapshots');
  for (const id of readdirSync(snapshots)) {
    const file = join(snapshots, id, 'layer.erofs');
    let offset: number;
    try {
      offset = readFileSync(file).indexOf(MARKER);
    } catch {
      continue;
    }
    if (offset < 0) continue;
    flipByte(file, offset + MARKER.length + 100);
    tamperedLayer = { file, offset: offset + MARKER.length + 100 };
  }
  dropCaches();
  const logBeforeRefusal = daemonLog().length;
  const execAfterTamper = await outcome(() => containerd.ctr(['tasks', 'exec', '--exec-id', 'reader', 'keeper', '/bin/cat', '/data/secret']));
  const statusMountedCorrupted = await runCli(statusArgs);
  const refusedWhileMounted = await outcome(() => containerd.run(IMAGE, ['/bin/true']));

  await containerd.ctr(['tasks', 'kill', '--signal', 'SIGKILL', 'keeper']);
  for (let i = 0; i < 100 && !(await containerd.ctr(['tasks', 'list'])).stdout.includes('STOPPED'); i++) await sleep(100);
  await containerd.ctr(['tasks', 'delete', 'keeper']);
  await containerd.ctr(['containers', 'delete', 'keeper']);
  const statusIdle = await waitUntilNoLayerMounted();
  const refusedFresh = await outcome(() => containerd.run(IMAGE, ['/bin/cat', '/data/secret']));
  const statusAfterTamper = await runCli(statusArgs);
  const metricsAfterTamper = await metrics();

  report = {
    firstRun,
    statusRunning,
    metricsRunning,
    restart: { statusAfter, keeperAlive: /keeper\s+\d+\s+RUNNING/.test(tasks), replacedLogLines },
    tamperedLayer,
    execAfterTamper,
    statusMountedCorrupted,
    refusedWhileMounted,
    statusIdle,
    refusedFresh,
    statusAfterTamper,
    metricsAfterTamper,
    refusalLogLines: daemonLog().slice(logBeforeRefusal).split('\n').filter((l) => l.includes('"layer refused"')),
    daemonLog: daemonLog().split('\n').slice(-40).join('\n'),
  };
} finally {
  await containerd.stop();
  await daemon.close();
}
writeFileSync(reportFile, `${JSON.stringify(report, null, 2)}\n`);
