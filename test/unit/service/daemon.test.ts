import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
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
  const err = await t.throwsAsync(startSnapshotterDaemon(cfg, silentLogger), { instanceOf: FailedPreconditionError });
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
