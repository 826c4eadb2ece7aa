/**
 * containerd 1.6's own snapshotter conformance suite (snapshots/testsuite,
 * built from Debian's Go sources by test/conformance/snapshotter)
 * against `integrityctl snapshotter serve` on a temp root and socket, once
 * with the cases one after the other and once all at the same time.
 */
import test from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMountInfo } from '../../../snapshotter/service/mounts/mountinfo.js';
import { nativeAddonMissing } from '../../support/native-addon.js';
import { until } from '../../support/until.js';

const MAIN = fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url));
const RUN_SH =
  process.env.SNAPSHOTTER_CONFORMANCE ?? fileURLToPath(new URL('../../../../test/conformance/snapshotter/run.sh', import.meta.url));
/** The suite's build (Go cache included) persists here between runs; other users of the tool keep theirs. */
const BUILD_DIR = join(tmpdir(), 'snapshotter-conformance-integrity');

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root: the suite mounts what the snapshotter returns';
  if (!existsSync(RUN_SH)) return `the conformance tool is not at ${RUN_SH} (set SNAPSHOTTER_CONFORMANCE)`;
  for (const pkg of ['golang-go', 'golang-github-containerd-containerd-dev']) {
    const q = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
    if (!q.stdout?.includes('install ok installed')) return `Debian package ${pkg} is not installed (the suite is built from it)`;
  }
  return nativeAddonMissing();
}

const skip = skipReason();
if (skip) test('containerd snapshotter conformance', (t) => t.pass(`skipped: ${skip}`));

async function startDaemon(root: string, socket: string, log: string[]): Promise<ChildProcess> {
  // Without device-mapper, verity = "auto" rightly warns for every layer it mounts without
  // dm-verity; this suite is about containerd's semantics and allows no warnings, so it is off there.
  const config = `${root}.toml`;
  writeFileSync(config, `verity = "${existsSync('/dev/mapper/control') ? 'auto' : 'off'}"\n`);
  const daemon = spawn(process.execPath, [MAIN, 'snapshotter', 'serve', '--config', config, '--root', root, '--address', socket], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  daemon.stderr!.setEncoding('utf8').on('data', (chunk: string) => log.push(chunk));
  for (let waited = 0; !existsSync(socket); waited += 50) {
    if (daemon.exitCode !== null || waited > 20_000) throw new Error(`the daemon did not start:\n${log.join('')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return daemon;
}

function runSuite(socket: string, mode: 'serial' | 'parallel'): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(RUN_SH, [], {
      env: { ...process.env, SNAPSHOTTER_SOCKET: socket, SNAPSHOTTER_MODE: mode, CONFORMANCE_BUILD_DIR: BUILD_DIR },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.on('error', reject);
    child.on('close', () => resolve(output));
  });
}

(skip ? test.skip : test)('containerd 1.6 testsuite passes serially and in parallel', async (t) => {
  t.timeout(280_000);
  const dir = mkdtempSync(join(tmpdir(), 'ci-conf-'));
  const root = join(dir, 'root');
  const socket = join(dir, 's.sock');
  const log: string[] = [];
  const mountsUnder = () => parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8')).filter((m) => m.mountPoint.startsWith(`${dir}/`));
  const daemon = await startDaemon(root, socket, log);
  t.teardown(async () => {
    if (daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
    for (const m of mountsUnder().reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(dir, { recursive: true, force: true });
  });

  for (const mode of ['serial', 'parallel'] as const) {
    const output = await runSuite(socket, mode);
    const last = output.trimEnd().split('\n').pop();
    t.log(`${mode}: ${last}`);
    t.is(last, '20 passed, 0 failed', output.slice(-4000));
  }

  // Every case removes what it made: no snapshot directory and no layer mount may be left. The
  // upper dirs of the last Commits go a few seconds after them (service/deferred-removal.ts).
  await until('the discarded upper dirs deleted', () => (readdirSync(join(root, 'snapshots')).length === 0 ? true : undefined), 60_000).catch(() => undefined);
  t.deepEqual(readdirSync(join(root, 'snapshots')), []);
  // Only the daemon's own tmpfs for unpack upper dirs (service/unpack-scratch.ts) stays while it runs.
  t.deepEqual(mountsUnder().map((m) => `${m.fsType} ${m.mountPoint}`), [`tmpfs ${join(root, 'unpack')}`]);
  t.deepEqual(readdirSync(join(root, 'unpack')), []);
  const problems = log.join('').split('\n').filter((line) => /"level":(40|50|60)/.test(line));
  t.deepEqual(problems, [], 'no warnings or errors in the daemon log');
});
