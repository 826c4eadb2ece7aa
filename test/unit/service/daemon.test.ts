import test, { type ExecutionContext } from 'ava';
import { once } from 'node:events';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSnapshotterConfig } from '../../../snapshotter/core/config.js';
import { FailedPreconditionError } from '../../../snapshotter/core/errors.js';
import { silentLogger } from '../../../snapshotter/core/log.js';
import { startSnapshotterDaemon } from '../../../snapshotter/service/daemon.js';

async function config(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'daemon-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return parseSnapshotterConfig('', 'test', { root: join(dir, 'root'), address: join(dir, 'run', 's.sock') });
}

test('serves on a private socket and lays out the root', async (t) => {
  const cfg = await config(t);
  const daemon = await startSnapshotterDaemon(cfg, silentLogger);
  t.teardown(() => daemon.close());
  const socket = await stat(cfg.address);
  t.true(socket.isSocket());
  t.is(socket.mode & 0o777, 0o600);
  t.true((await stat(join(cfg.root, 'metadata.db'))).isFile());
  t.true((await stat(join(cfg.root, 'snapshots'))).isDirectory());
  t.true((await stat(cfg.mounts.dir)).isDirectory());
});

test('a second daemon on a live socket is refused; a stale socket file is replaced', async (t) => {
  const cfg = await config(t);
  const first = await startSnapshotterDaemon(cfg, silentLogger);
  const otherRoot = { ...cfg, root: `${cfg.root}-other`, mounts: { ...cfg.mounts, dir: `${cfg.root}-other/m` } };
  t.teardown(() => rm(otherRoot.root, { recursive: true, force: true }));
  const err = await t.throwsAsync(startSnapshotterDaemon(otherRoot, silentLogger), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, /another process already serves/);
  await first.close();

  // A socket whose server died: a process that exits while listening leaves the file behind.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(cfg.address)}, () => process.exit(0))`]);
  t.true((await stat(cfg.address)).isSocket());
  const second = await startSnapshotterDaemon(cfg, silentLogger);
  await second.close();
  t.pass('the stale socket was replaced');
});

test('a file that is not a socket at the address is left alone', async (t) => {
  const cfg = await config(t);
  await startSnapshotterDaemon(cfg, silentLogger).then((d) => d.close());
  await writeFile(cfg.address, 'not a socket');
  await t.throwsAsync(startSnapshotterDaemon(cfg, silentLogger), { instanceOf: FailedPreconditionError, message: /is not a socket/ });
});

test('a second daemon on the same root is refused, also on another socket, naming the process that holds the root', async (t) => {
  const cfg = await config(t);
  const first = await startSnapshotterDaemon(cfg, silentLogger);
  const otherSocket = { ...cfg, address: join(cfg.root, '..', 'run', 'other.sock') };
  const err = await t.throwsAsync(startSnapshotterDaemon(otherSocket, silentLogger), { instanceOf: FailedPreconditionError });
  t.is(err!.message, `another snapshotter (process ${process.pid}) is using the root ${cfg.root}: it holds ${join(cfg.root, 'daemon.lock')}`);
  t.regex(err!.hint!, /stop the other snapshotter/);
  await t.throwsAsync(stat(otherSocket.address), { code: 'ENOENT' }, 'the refused daemon touched nothing');
  await first.close();
  const second = await startSnapshotterDaemon(otherSocket, silentLogger);
  await second.close();
  t.pass('a stopped daemon released the root');
});

test('the root lock of a daemon killed with SIGKILL is free at once: the kernel drops it with the process', async (t) => {
  const cfg = await config(t);
  await mkdir(cfg.root, { recursive: true });
  const lockFile = join(cfg.root, 'daemon.lock');
  const rootLock = new URL('../../../snapshotter/service/root-lock.js', import.meta.url).href;
  // A process that takes the lock the way the daemon does, reports, and waits to be killed.
  const holder = spawn(process.execPath, ['--input-type=module', '-e', `
    const { lockRoot } = await import(${JSON.stringify(rootLock)});
    lockRoot(${JSON.stringify(lockFile)}, ${JSON.stringify(cfg.root)});
    console.log('locked');
    setInterval(() => {}, 1000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => holder.kill('SIGKILL'));
  await once(holder.stdout, 'data');
  const err = await t.throwsAsync(startSnapshotterDaemon(cfg, silentLogger), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, new RegExp(`another snapshotter \\(process ${holder.pid}\\)`));
  holder.kill('SIGKILL');
  await once(holder, 'exit');
  const daemon = await startSnapshotterDaemon(cfg, silentLogger);
  await daemon.close();
  t.pass();
});
