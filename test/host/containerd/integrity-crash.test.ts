/**
 * kill -9 of `integrityctl snapshotter serve` at the points where a crash
 * hurts, under a real containerd 1.6: while a layer converts (an
 * import), between building a layer and the transaction that commits it,
 * while a Commit builds a layer from an upper dir, while Remove deletes a
 * snapshot, and while a CRI pull converts a layer on the fast path. After
 * each, the daemon starts again on the same root, and the root must be
 * consistent (test/support/root-state.ts): no half-committed snapshot (every
 * committed one has its layer files, whose root hash veritysetup recomputes
 * to the recorded one), no `.tmp-*`, `new-*`, `rm-*`, no mount or loop
 * device nobody needs; and containerd can import or pull the image again
 * and run it. Layers are on loop devices here (`mounts.backing = "loop"`),
 * so a leaked device would show.
 *
 * Kill points are found by watching the real process, never by hooks in it:
 * temporary files appear while a layer is written; `rm-*` while a snapshot
 * is deleted; and "between build and commit" is made to last by holding
 * the metadata database's write lock from here, so the daemon's transaction
 * waits while its layer files are already in place.
 */
import test, { type ExecutionContext } from 'ava';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { containerdSkipReason } from '../../support/containerd.js';
import { startIntegrityStack, type IntegrityStack } from '../../support/integrity-snapshotter.js';
import { busyboxImage, chainIds, type FileSpec, type TestImage } from '../../support/oci-image.js';
import { Registry, registrySkipReason } from '../../support/registry.js';
import { rootProblems } from '../../support/root-state.js';
import { veritysetupMissing } from '../../support/veritysetup.js';
import { until } from '../../support/until.js';

const skip = containerdSkipReason() ?? veritysetupMissing();
const serial = skip ? test.skip : test.serial;
if (skip) test('integrity snapshotter: crashes', (t) => t.pass(`skipped: ${skip}`));
const registrySkip = registrySkipReason();

const HOST = 'registry.test';
const IMAGE = 'integrity.test/crash/big';
/** Big enough that converting a layer takes a while: random data, so gzip cannot shrink it. */
const LAYERS = 3;
const FILES_PER_LAYER = 5;
const FILE_BYTES = 8 << 20;

let work: string;
let stack: IntegrityStack;
let registry: Registry | undefined;
let image: TestImage;
/** sha256 of /big/<layer>-<file>, what the container must read. */
const digests = new Map<string, string>();

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/integrity-crash-');
  const layers: FileSpec[][] = [];
  for (let l = 0; l < LAYERS; l++) {
    const files: FileSpec[] = [{ path: 'big/' }];
    for (let f = 0; f < FILES_PER_LAYER; f++) {
      const data = randomBytes(FILE_BYTES);
      digests.set(`${l}-${f}`, createHash('sha256').update(data).digest('hex'));
      files.push({ path: `big/${l}-${f}`, data });
    }
    layers.push(files);
  }
  image = await busyboxImage(join(work, 'big'), { tag: 'v1', layers });
  if (!registrySkip) {
    registry = await Registry.start();
    await registry.push(`${join(work, 'big')}:v1`, 'crash/big:v1');
  }
  stack = await startIntegrityStack({ backing: 'loop', ...(registry ? { registryMirrors: { [HOST]: registry.url } } : {}) });
});

test.after.always(async () => {
  await stack?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

const snapshotsDir = () => join(stack.snapshotter.root, 'snapshots');

/** Paths of every file directly inside a snapshot directory (known or in flight). */
async function snapshotFiles(): Promise<string[]> {
  const paths: string[] = [];
  for (const dir of await readdir(snapshotsDir()).catch(() => [])) {
    for (const f of await readdir(join(snapshotsDir(), dir)).catch(() => [])) paths.push(join(dir, f));
  }
  return paths;
}

/** A file being written as a layer image: `<dir>/.tmp-layer.erofs.*`. */
async function layerInProgress(inDir?: (dir: string) => boolean): Promise<string | undefined> {
  return (await snapshotFiles()).find((p) => /\/\.tmp-layer\.erofs\./.test(p) && (inDir?.(p.split('/')[0]!) ?? true));
}

/** Starts `operation`, which is expected to fail once the daemon is killed; returns how it ended. */
function background(operation: Promise<unknown>): Promise<string> {
  return operation.then(() => 'succeeded', (err: unknown) => `failed: ${(err as Error).message.split('\n')[0]}`);
}

/** The daemon starts again on the same root; its start-up must leave nothing half done. */
async function restartAndCheck(t: ExecutionContext): Promise<void> {
  await stack.withLogs(() => stack.snapshotter.startAgain());
  t.deepEqual(await rootProblems(stack.snapshotter), [], 'the root is consistent after start-up');
  await reconnected();
}

/**
 * containerd's connection to a proxy snapshotter that went away retries with
 * a backoff of up to 3 s, and calls fail fast meanwhile ("connection
 * refused"): wait until a call gets through again.
 */
async function reconnected(): Promise<void> {
  // A Prepare, because List and Stat are answered from containerd's own metadata.
  const probe = `reconnect-${randomBytes(4).toString('hex')}`;
  const snapshots = ['snapshots', '--snapshotter', 'integrity'];
  await until('containerd reaching the snapshotter again', () =>
    stack.containerd.ctr([...snapshots, 'prepare', probe]).then(() => true, () => undefined), 15_000);
  await stack.containerd.ctr([...snapshots, 'rm', probe]);
}

/**
 * Waits for a full garbage collection of containerd (removing a lease with
 * --sync waits for one), so that none runs while the root is inspected:
 * after an import, containerd collects the import's lease asynchronously.
 */
async function settle(): Promise<void> {
  const lease = `settle-${randomBytes(4).toString('hex')}`;
  await stack.containerd.ctr(['leases', 'create', '--id', lease]);
  await stack.containerd.ctr(['leases', 'rm', '--sync', lease]);
}

/** The root of the running daemon after containerd settled (layers may be mounted, idle). */
async function settledProblems(): Promise<string[]> {
  await settle();
  await discardedDeleted();
  return rootProblems(stack.snapshotter, { idleMounts: true });
}

/** The upper dirs Commits discarded are deleted a few seconds after the last Commit (deferred-removal.ts). */
async function discardedDeleted(): Promise<void> {
  await until('the discarded upper dirs deleted', async () => ((await readdir(snapshotsDir())).some((n) => n.startsWith('rm-')) ? undefined : true), 60_000);
}

/** Imports the image (again) and runs a container that reads every big file. */
async function importAndRun(t: ExecutionContext): Promise<void> {
  await stack.withLogs(() => stack.containerd.importLayout(join(work, 'big'), IMAGE, { timeoutMs: 180_000 }));
  await runAndCheck(t, `${IMAGE}:v1`);
}

async function runAndCheck(t: ExecutionContext, image: string): Promise<void> {
  const { stdout } = await stack.withLogs(() => stack.containerd.run(image, ['/bin/sh', '-c', 'cd /big && sha256sum *'], { timeoutMs: 60_000 }));
  const read = new Map(stdout.trim().split('\n').map((line) => line.split(/\s+/).reverse() as [string, string]));
  t.deepEqual(read, digests, 'the container reads every file of every layer');
}

/**
 * Removes the image — and the name CRI gives every image of its namespace,
 * the config digest — and lets containerd's garbage collector remove its
 * content and snapshots, so that the next import converts again.
 */
async function removeImage(name: string): Promise<void> {
  await stack.withLogs(() => stack.containerd.ctr(['images', 'rm', '--sync', name, image.manifest.config.digest]));
}

serial('kill -9 while a layer converts (ctr image import): nothing half-committed, and the import works again', async (t) => {
  t.timeout(300_000);
  t.teardown(() => removeImage(`${IMAGE}:v1`).catch(() => undefined));
  const importing = background(stack.containerd.importLayout(join(work, 'big'), IMAGE, { timeoutMs: 180_000 }));
  const converting = await until('a layer being converted', () => layerInProgress());
  await stack.snapshotter.crash();
  t.true(existsSync(join(snapshotsDir(), converting)), 'the kill landed while the layer file was being written');
  t.regex(await importing, /^failed/, 'ctr saw the snapshotter die');
  await restartAndCheck(t);
  await importAndRun(t);
  t.deepEqual(await settledProblems(), []);
});

serial('kill -9 between building a layer and the transaction that commits it: the snapshot stays active, its layer files go', async (t) => {
  t.timeout(300_000);
  t.teardown(() => removeImage(`${IMAGE}:v1`).catch(() => undefined));
  const dbPath = join(stack.snapshotter.root, 'metadata.db');
  const importing = background(stack.containerd.importLayout(join(work, 'big'), IMAGE, { timeoutMs: 180_000 }));
  // A big layer's files (not busybox's) in an active snapshot's directory: built ahead and moved in at its
  // Prepare, while containerd writes the upper dir. Holding the write lock then makes the Commit's transaction
  // wait (for up to its 5 s busy timeout); one that committed before the lock was taken is passed over.
  const db = new Database(dbPath, { timeout: 10_000 });
  const passed = new Set<string>();
  try {
    let dir: string | undefined;
    while (dir === undefined) {
      const candidate = await until('a big layer in a snapshot directory', async () => {
        for (const p of await snapshotFiles()) {
          const [d, f] = p.split('/') as [string, string];
          if (f === 'layer.erofs' && /^\d+$/.test(d) && !passed.has(d) && (await sizeOf(join(snapshotsDir(), p))) > FILE_BYTES) return d;
        }
        return undefined;
      });
      passed.add(candidate);
      db.exec('BEGIN IMMEDIATE');
      const row = db.prepare('SELECT kind FROM snapshots WHERE id = ?').get(Number(candidate)) as { kind: bigint | number } | undefined;
      if (Number(row?.kind) === 2) dir = candidate;
      else db.exec('ROLLBACK');
    }
    t.deepEqual((await readdir(join(snapshotsDir(), dir))).filter((f) => f.startsWith('layer.')).sort(), ['layer.erofs', 'layer.verity']);
    // Long enough for containerd to finish writing and call Commit, which now waits for the lock.
    await sleep(500);
    await stack.snapshotter.crash();
    const row = db.prepare('SELECT kind FROM snapshots WHERE id = ?').get(Number(dir)) as { kind: bigint | number } | undefined;
    t.is(Number(row?.kind), 2, 'the snapshot was still active when the daemon died');
  } finally {
    if (db.inTransaction) db.exec('ROLLBACK');
    db.close();
  }
  t.regex(await importing, /^failed/);
  await restartAndCheck(t);
  await importAndRun(t);
});

serial('kill -9 while a Commit builds a layer from an upper dir: the snapshot stays active and commits later', async (t) => {
  t.timeout(300_000);
  const ctr = (args: string[]) => stack.withLogs(() => stack.containerd.ctr(['snapshots', '--snapshotter', 'integrity', ...args]));
  await ctr(['prepare', 'crash-upper']);
  const id = await snapshotId('crash-upper');
  const upper = join(snapshotsDir(), String(id), 'fs');
  await mkdir(join(upper, 'data'));
  for (let i = 0; i < 12; i++) await writeFile(join(upper, 'data', `f${i}`), randomBytes(FILE_BYTES));
  const committing = background(ctr(['commit', 'crash-upper-layer', 'crash-upper']));
  await until('the layer being built from the upper dir', () => layerInProgress((dir) => dir === String(id)));
  await stack.snapshotter.crash();
  t.regex(await committing, /^failed/);
  await restartAndCheck(t);
  t.is((await readdir(join(upper, 'data'))).length, 12, 'the upper dir is untouched');
  await ctr(['commit', 'crash-upper-layer', 'crash-upper']);
  t.deepEqual(await settledProblems(), []);
  await ctr(['rm', 'crash-upper-layer']);
});

serial('kill -9 while Remove deletes a snapshot: nothing of it is left, nor of its mounts', async (t) => {
  t.timeout(300_000);
  t.teardown(() => removeImage(`${IMAGE}:v1`).catch(() => undefined));
  await importAndRun(t);
  const ctr = (args: string[]) => stack.withLogs(() => stack.containerd.ctr(['snapshots', '--snapshotter', 'integrity', ...args]));
  // An active snapshot on the image's layers (they get mounted), with many files to delete.
  await ctr(['prepare', 'crash-rm', chainIds(image.tars).at(-1)!]);
  const id = await snapshotId('crash-rm');
  const upper = join(snapshotsDir(), String(id), 'fs');
  for (let d = 0; d < 40; d++) {
    await mkdir(join(upper, `d${d}`));
    await Promise.all(Array.from({ length: 250 }, (_, f) => writeFile(join(upper, `d${d}`, `f${f}`), `${d}/${f}`)));
  }
  // containerd removes the backend snapshot in its garbage collection, which `ctr snapshots rm` triggers.
  // Upper dirs that Commits discarded may still wait in rm-* (deferred-removal.ts): the removal makes a new one.
  const before = new Set(await readdir(snapshotsDir()));
  const removalDir = async () => (await readdir(snapshotsDir())).find((n) => n.startsWith('rm-') && !before.has(n));
  const removing = background(ctr(['rm', 'crash-rm']));
  await until('the snapshot being deleted (rm-*)', removalDir);
  await stack.snapshotter.crash();
  t.truthy(await removalDir(), 'the kill landed while the directory was being deleted');
  await removing;
  await restartAndCheck(t);
  t.false((await ctr(['ls'])).stdout.includes('crash-rm'));
  await runAndCheck(t, `${IMAGE}:v1`);
  t.deepEqual(await settledProblems(), []);
});

serial('kill -9 while a CRI pull converts a layer on the fast path: a new pull works', async (t) => {
  if (!registry) return t.pass(`skipped: ${registrySkip}`);
  t.timeout(300_000);
  const image = `${HOST}/crash/big:v1`;
  const pulling = background(stack.containerd.cri.pullImage(image));
  await until('a layer converted at Prepare (new-*)', () => layerInProgress((dir) => dir.startsWith('new-')));
  await stack.snapshotter.crash();
  t.regex(await pulling, /^failed/);
  await restartAndCheck(t);
  await stack.withLogs(() => stack.containerd.cri.pullImage(image));
  t.deepEqual(await settledProblems(), []);
  await runAndCheck(t, image);
  t.deepEqual(await settledProblems(), []);
});

serial('a second daemon on the same root is refused and changes nothing; the lock dies with a killed daemon', async (t) => {
  const sn = stack.snapshotter;
  const second = spawn(process.execPath, [
    fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url)),
    'snapshotter', 'serve', '--config', sn.configFile, '--address', join(sn.dir, 'second.sock'),
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  second.stdout.on('data', (d: Buffer) => (output += d.toString()));
  second.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code] = (await once(second, 'exit')) as [number | null];
  t.not(code, 0);
  t.regex(output, new RegExp(`another snapshotter \\(process ${sn.pid}\\) is using the root ${sn.root}`));
  t.false(existsSync(join(sn.dir, 'second.sock')));
  await discardedDeleted();
  t.deepEqual(await rootProblems(sn, { idleMounts: true }), []);
  await sn.crash();
  await restartAndCheck(t);
  t.pass('the restarted daemon took the root of the killed one');
});

async function snapshotId(key: string): Promise<number> {
  const store = new Database(join(stack.snapshotter.root, 'metadata.db'), { readonly: true });
  try {
    const row = store.prepare("SELECT id FROM snapshots WHERE key LIKE '%/' || ?").get(key) as { id: bigint | number } | undefined;
    if (!row) throw new Error(`no snapshot with key */${key}`);
    return Number(row.id);
  } finally {
    store.close();
  }
}

async function sizeOf(path: string): Promise<number> {
  return (await stat(path).catch(() => ({ size: 0 }))).size;
}
