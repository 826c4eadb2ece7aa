/**
 * The containerd test harness, proved with containerd's own overlayfs
 * snapshotter and no proxy: a private containerd 1.6 imports and runs images
 * built in the test, CRI runs a host-network pod, a real registry serves
 * pulls that carry the snapshot annotations, and teardown leaves nothing.
 * Tests of the integrity snapshotter repeat these steps with it configured.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, runCommand } from '../../support/command.js';
import { cgroupDirs, Containerd, containerdSkipReason, unmountUnder } from '../../support/containerd.js';
import { runPod, runToExit, streamText, containerConfig } from '../../support/cri-pod.js';
import { assertMergedTree, LAYER_CHANGES, LIST_MERGED_TREE } from '../../support/layer-changes.js';
import { busyboxImage, chainIds, type TestImage } from '../../support/oci-image.js';
import { Registry, registrySkipReason } from '../../support/registry.js';

const skip = containerdSkipReason();
const registrySkip = skip ?? registrySkipReason();
const serial = skip ? test.skip : test.serial;
if (skip) test('containerd harness', (t) => t.pass(`skipped: ${skip}`));

const IMPORTED = 'integrity.test/app:v1';
/** A mirror name, so references look like a node's; containerd sends the pulls to the local registry. */
const MIRRORED_HOST = 'registry.test';

let work: string;
let containerd: Containerd;
let registry: Registry | undefined;
let pushed: TestImage;

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/harness-test-');
  await busyboxImage(join(work, 'app'), { tag: 'v1', layers: LAYER_CHANGES });
  // A different top layer than the imported image: a pull of shared layers would not unpack (or label) anything.
  pushed = await busyboxImage(join(work, 'pulled'), { tag: 'v1', layers: [[{ path: 'data/' }, { path: 'data/pulled', data: 'pulled\n' }]] });
  if (!registrySkip) {
    registry = await Registry.start();
    await registry.push(`${join(work, 'pulled')}:v1`, 'test/pulled:v1');
  }
  containerd = await Containerd.start(registry ? { registryMirrors: { [MIRRORED_HOST]: registry.url } } : {});
  await containerd.importPauseImage();
  await containerd.importLayout(join(work, 'app'), 'integrity.test/app');
});

test.after.always(async () => {
  await containerd?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

serial('a container of the imported image sees the merged tree of its layers', async (t) => {
  const { stdout } = await containerd.run(IMPORTED, ['/bin/sh', '-c', LIST_MERGED_TREE]);
  assertMergedTree(t, stdout);
});

serial('the imported image has every layer applied: whiteout, opaque dir, links, xattr', async (t) => {
  const root = await containerd.mountImage(IMPORTED);
  try {
    t.deepEqual((await readdir(join(root, 'data'))).sort(), ['attr', 'exec', 'gone', 'hard', 'keep', 'link', 'old', 'tree', 'wd']);
    t.deepEqual(await readdir(join(root, 'data/old')), ['new']);
    t.is(await readlink(join(root, 'data/link')), 'keep');
    t.is((await stat(join(root, 'data/hard'))).ino, (await stat(join(root, 'data/keep'))).ino);
    const sh = await stat(join(root, 'bin/sh'));
    t.is(sh.ino, (await stat(join(root, 'bin/busybox'))).ino);
    t.is(sh.mode & 0o777, 0o755);
    const { stdout } = await runCommand('getfattr', ['--only-values', '--name=user.integrity.test', join(root, 'data/attr')]);
    t.is(stdout, 'xattr value');
  } finally {
    await containerd.unmountImage(root);
  }
});

serial('CRI runs a host-network pod and a container to its exit, with status and log', async (t) => {
  await containerd.withLog(async () => {
    const pod = await runPod(containerd.cri, 'harness-exit');
    try {
      const run = await runToExit(containerd.cri, pod, {
        name: 'exits',
        image: IMPORTED,
        command: ['/bin/sh', '-c', 'echo out $GREETING; echo err >&2; cat /data/keep; exit 7'],
        env: { GREETING: 'hello' },
      });
      t.is(run.status.state, 'CONTAINER_EXITED');
      t.is(run.status.exit_code, 7);
      t.is(run.status.reason, 'Error');
      t.is(run.status.image?.image, IMPORTED);
      t.regex(run.status.image_ref, /^sha256:[0-9a-f]{64}$/);
      // CRI stamps started_at after the task's Start returns, and a container this quick may
      // already have exited by then (its finished_at comes from the shim), so only both being set is certain.
      t.true(BigInt(run.status.started_at) > 0n && BigInt(run.status.finished_at) > 0n);
      t.is(streamText(run.log, 'stdout'), 'out hello\nkept\n');
      t.is(streamText(run.log, 'stderr'), 'err\n');
    } finally {
      await pod.remove();
    }
  });
});

serial('CRI ExecSync into a running container, ListContainers, StopContainer', async (t) => {
  const cri = containerd.cri;
  await containerd.withLog(async () => {
    const pod = await runPod(cri, 'harness-exec');
    try {
      const id = await cri.createContainer(pod.id, containerConfig({ name: 'sleeper', image: IMPORTED, command: ['/bin/sleep', '3600'] }), pod.config);
      await cri.startContainer(id);
      await cri.waitForContainerState(id, 'CONTAINER_RUNNING');
      const exec = await cri.execSync(id, ['/bin/cat', '/data/keep']);
      t.is(exec.exit_code, 0);
      t.is(Buffer.from(exec.stdout).toString(), 'kept\n');
      const listed = await cri.listContainers({ pod_sandbox_id: pod.id });
      t.deepEqual(listed.map((c) => [c.id, c.state]), [[id, 'CONTAINER_RUNNING']]);
      await cri.stopContainer(id, 0);
      const stopped = await cri.waitForContainerState(id, 'CONTAINER_EXITED');
      t.is(stopped.exit_code, 137); // SIGKILL: the grace period was 0
      await cri.removeContainer(id);
    } finally {
      await pod.remove();
    }
  });
});

(registrySkip ? test.skip : test.serial)('CRI PullImage from a registry passes the cri.* snapshot labels and the image runs', async (t) => {
  const reference = `${MIRRORED_HOST}/test/pulled:v1`;
  await containerd.withLog(async () => {
    const imageId = await containerd.cri.pullImage(reference);
    t.is(imageId, pushed.manifest.config.digest);
    const image = await containerd.cri.imageStatus(reference);
    t.deepEqual(image?.repo_digests, [`${MIRRORED_HOST}/test/pulled@${pushed.descriptor.digest}`]);

    // The labels containerd's unpacker gave Prepare stay on the committed snapshot.
    const top = chainIds(pushed.tars).at(-1)!;
    const { stdout } = await containerd.ctr(['snapshots', '--snapshotter', containerd.snapshotter, 'info', top]);
    const labels = (JSON.parse(stdout) as { Labels?: Record<string, string> }).Labels ?? {};
    t.is(labels['containerd.io/snapshot.ref'], top);
    t.is(labels['containerd.io/snapshot/cri.layer-digest'], pushed.manifest.layers.at(-1)!.digest);
    t.is(labels['containerd.io/snapshot/cri.manifest-digest'], pushed.descriptor.digest);
    t.is(labels['containerd.io/snapshot/cri.image-ref'], reference);

    const pod = await runPod(containerd.cri, 'harness-pulled');
    try {
      const run = await runToExit(containerd.cri, pod, { name: 'pulled', image: reference, command: ['/bin/cat', '/data/pulled'] });
      t.is(run.status.exit_code, 0);
      t.is(streamText(run.log, 'stdout'), 'pulled\n');
    } finally {
      await pod.remove();
    }
  });
});

serial('a failing ctr call says why and carries the containerd log tail', async (t) => {
  const error = await t.throwsAsync(containerd.run('integrity.test/absent:v1', ['/bin/true']), { instanceOf: CommandError });
  t.regex(error!.message, /integrity\.test\/absent:v1.*not found/);
  t.regex(error!.message, /--- containerd log \(tail/);
});

/** A containerd with a detached `sleep` container: the container's init pid and its shim's pid. */
async function withDetachedContainer(): Promise<{ own: Containerd; init: number; shim: number }> {
  const own = await Containerd.start();
  try {
    const id = `detached-${randomBytes(4).toString('hex')}`;
    await own.importLayout(join(work, 'app'), 'integrity.test/app');
    await own.run(IMPORTED, ['/bin/sleep', '3600'], { id, detach: true });
    const { stdout } = await own.ctr(['tasks', 'list']);
    const init = Number(stdout.split('\n').find((line) => line.startsWith(id))?.split(/\s+/)[1]);
    const shim = Number(/^PPid:\s+(\d+)/m.exec(await readFile(`/proc/${init}/status`, 'utf8'))?.[1]);
    return { own, init, shim };
  } catch (err) {
    await own.stop();
    throw err;
  }
}

for (const [title, kill] of [
  ['stop() kills running containers and shims, unmounts and removes everything', false],
  ['stop() cleans up as well after containerd died', true],
] as const) {
  serial(title, async (t) => {
    const { own, init, shim } = await withDetachedContainer();
    let cgroups: string[] = [];
    try {
      t.true((await readFile(`/proc/${shim}/cmdline`, 'utf8')).includes(own.address), 'the container is a child of our shim');
      t.true((await readFile('/proc/self/mountinfo', 'utf8')).includes(`${own.dir}/`), 'the container rootfs is mounted');
      cgroups = await cgroupDirs(init);
      t.not(cgroups.length, 0);
      if (kill) {
        const containerd = await pidOf(own.configFile);
        process.kill(containerd, 'SIGKILL');
        t.true(await gone(containerd));
      }
    } finally {
      await own.stop();
    }
    t.false(existsSync(own.dir));
    t.false((await readFile('/proc/self/mountinfo', 'utf8')).includes(`${own.dir}/`));
    t.true(await gone(init), 'the container process is gone');
    t.true(await gone(shim), 'the shim is gone');
    t.deepEqual(cgroups.filter((dir) => existsSync(dir)), [], 'the container cgroups are gone');
    await own.stop(); // idempotent
  });
}

serial('unmountUnder detaches nested mounts under a directory, deepest first', async (t) => {
  const dir = await mkdtemp('/tmp/harness-unmount-');
  try {
    await runCommand('mount', ['-t', 'tmpfs', 'outer', dir]);
    await runCommand('mkdir', [join(dir, 'inner')]);
    await runCommand('mount', ['-t', 'tmpfs', 'inner', join(dir, 'inner')]);
    // unmountUnder leaves `dir` itself alone: only what is below it.
    await unmountUnder(dir);
    const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
    t.false(mountinfo.includes(`${dir}/inner `));
    t.true(mountinfo.includes(` ${dir} `));
  } finally {
    await runCommand('umount', ['--recursive', dir]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
});

/** The process whose command line holds `argument`. */
async function pidOf(argument: string): Promise<number> {
  for (const entry of await readdir('/proc')) {
    if (/^\d+$/.test(entry) && (await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')).split('\0').includes(argument)) return Number(entry);
  }
  throw new Error(`no process has ${argument} in its command line`);
}

/** Dead (no such pid, or a zombie waiting for its reaper) within 3 s. */
async function gone(pid: number): Promise<boolean> {
  const deadline = Date.now() + 3_000;
  for (;;) {
    try {
      if (/^State:\s+Z/m.test(await readFile(`/proc/${pid}/status`, 'utf8'))) return true;
    } catch {
      return true;
    }
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}
