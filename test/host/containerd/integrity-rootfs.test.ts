/**
 * Container root filesystems from the integrity snapshotter under containerd
 * 1.6's CRI (host-network pods, the local pause image): containers of
 * protected images get ONE overlay mount of the mountpoints layer and the
 * image layers, no upper dir — their root is read-only while CRI's mounts
 * (/etc/resolv.conf, /etc/hosts, a /tmp volume) work; other containers keep
 * a writable root. Single-layer and 128-layer images run; a restart of the
 * snapshotter keeps the running containers' layers.
 */
import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { containerdSkipReason } from '../../support/containerd.js';
import { containerConfig, hostNetworkPod, runToExit, streamText, type Pod } from '../../support/cri-pod.js';
import { startIntegrityStack, type IntegrityStack } from '../../support/integrity-snapshotter.js';
import { busyboxImage } from '../../support/oci-image.js';
import { Registry, registrySkipReason } from '../../support/registry.js';

const skip = containerdSkipReason() ?? registrySkipReason();
const serial = skip ? test.skip : test.serial;
if (skip) test('integrity snapshotter: container roots', (t) => t.pass(`skipped: ${skip}`));

const HOST = 'registry.test';
const PROTECTED = ['integrity.test/protected/*', `${HOST}/protected/*`];
/** What the pod's resolv.conf must say: CRI writes it from the sandbox's DNS config. */
const DNS = { servers: ['192.0.2.53'], searches: ['integrity.test'], options: ['ndots:2'] };

let work: string;
let registry: Registry;
let stack: IntegrityStack;
let pod: Pod;
let containers = 0;

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/integrity-rootfs-');
  const app = (who: string) => [[{ path: 'data/' }, { path: 'data/app', data: `${who} app\n` }]];
  await busyboxImage(join(work, 'protected'), { tag: 'v1', layers: app('protected') });
  await busyboxImage(join(work, 'free'), { tag: 'v1', layers: app('free') });
  await busyboxImage(join(work, 'single'), { tag: 'v1' });
  await busyboxImage(join(work, 'deep'), { tag: 'v1', layers: Array.from({ length: 127 }, (_, i) => [{ path: `l${i}`, data: `${i}\n` }]) });
  registry = await Registry.start();
  await registry.push(`${join(work, 'deep')}:v1`, 'protected/deep:v1');
  stack = await startIntegrityStack({ protectedImages: PROTECTED, registryMirrors: { [HOST]: registry.url } });
  await stack.withLogs(async () => {
    const ctd = stack.containerd;
    await ctd.importPauseImage();
    await ctd.importLayout(join(work, 'protected'), 'integrity.test/protected/app');
    await ctd.importLayout(join(work, 'free'), 'integrity.test/free/app');
    await ctd.importLayout(join(work, 'single'), 'integrity.test/protected/single');
    // The same single layer under an unprotected name: its chain is a protected image's too.
    await ctd.importLayout(join(work, 'single'), 'integrity.test/free/busybox');
    const config = { ...hostNetworkPod('rootfs', await mkdtemp('/tmp/cri-logs-')), dns_config: DNS };
    const id = await ctd.cri.runPodSandbox(config);
    pod = {
      id,
      config,
      logDirectory: config.log_directory!,
      remove: async () => {
        await ctd.cri.stopPodSandbox(id);
        await ctd.cri.removePodSandbox(id);
        await rm(config.log_directory!, { recursive: true, force: true });
      },
    };
  });
});

test.after.always(async () => {
  await pod?.remove().catch(() => undefined);
  await stack?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

interface Run {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The host directory mounted at /tmp. */
  tmp: string;
}

/** Runs `script` in a container of `image` in the pod, with a host directory as its /tmp volume. */
async function run(image: string, script: string): Promise<Run> {
  const tmp = await mkdtemp(join(work, 'tmp-'));
  const result = await stack.withLogs(() =>
    runToExit(stack.containerd.cri, pod, {
      name: `c${++containers}`,
      image,
      command: ['/bin/sh', '-c', script],
      mounts: [{ containerPath: '/tmp', hostPath: tmp }],
    }),
  );
  return { exitCode: result.status.exit_code, stdout: streamText(result.log, 'stdout'), stderr: streamText(result.log, 'stderr'), tmp };
}

/** The root mount's overlay options, as the container sees them. */
const ROOT_OPTIONS = `awk '$5 == "/" { print $NF }' /proc/self/mountinfo`;

function lowerDirs(options: string): string[] {
  return (/(?:^|,)lowerdir=([^,]*)/.exec(options)?.[1] ?? '').split(':').filter(Boolean);
}

/** The mount point of the mountpoints layer (from the snapshotter's log). */
function mountpointsLayer(): string {
  const built = stack.snapshotter.logs().find((l) => l.msg === 'mountpoints layer built');
  return join(stack.snapshotter.mountsDir, String(built?.layer));
}

serial("a protected image: read-only root, CRI's resolv.conf, hosts and a /tmp volume work", async (t) => {
  const r = await run('integrity.test/protected/app:v1', [
    'cat /data/app',
    'touch /x; echo "touch=$?"',
    'echo written > /tmp/t && echo "tmp=$(cat /tmp/t)"',
    'cat /etc/hosts > /dev/null && echo hosts=ok',
    'cat /etc/resolv.conf',
    ROOT_OPTIONS,
  ].join('\n'));
  const lines = r.stdout.split('\n');
  t.is(lines[0], 'protected app');
  t.is(lines[1], 'touch=1');
  t.regex(r.stderr, /touch: \/x: Read-only file system/);
  t.is(lines[2], 'tmp=written');
  t.is(await readFile(join(r.tmp, 't'), 'utf8'), 'written\n', 'the write went to the volume');
  t.is(lines[3], 'hosts=ok');
  t.regex(r.stdout, /^search integrity\.test$/m);
  t.regex(r.stdout, /^nameserver 192\.0\.2\.53$/m);
  const options = lines.at(-2)!;
  t.regex(options, /^ro,/);
  t.notRegex(options, /upperdir=/);
  t.deepEqual(lowerDirs(options).slice(0, 1), [mountpointsLayer()], 'the mountpoints layer is on top');
  t.is(lowerDirs(options).length, 3, 'mountpoints layer, app layer, busybox layer');
});

serial('an unprotected image keeps a writable root', async (t) => {
  const r = await run('integrity.test/free/app:v1', ['touch /x && echo wrote', 'cat /data/app', ROOT_OPTIONS].join('\n'));
  t.is(r.exitCode, 0, r.stderr);
  const [wrote, app, options] = r.stdout.split('\n');
  t.is(wrote, 'wrote');
  t.is(app, 'free app');
  t.regex(options!, /upperdir=/);
  t.false(lowerDirs(options!).includes(mountpointsLayer()));
});

serial('fail closed: an unprotected name for a protected layer chain runs read-only', async (t) => {
  const r = await run('integrity.test/free/busybox:v1', 'touch /x');
  t.not(r.exitCode, 0);
  t.regex(r.stderr, /Read-only file system/);
  const decision = stack.snapshotter.logs().filter((l) => l.msg === 'container root filesystem').at(-1);
  t.like(decision, { readOnly: true });
  // The layer was recorded for the first protected image found using it when it was imported.
  t.regex(String(decision?.reason), /image integrity\.test\/protected\/.*protected by "integrity\.test\/protected\/\*"/);
});

serial('a single-layer protected image runs: the mountpoints layer is the second lower dir overlay needs', async (t) => {
  const r = await run('integrity.test/protected/single:v1', ['cat /etc/passwd', ROOT_OPTIONS].join('\n'));
  t.is(r.exitCode, 0, r.stderr);
  t.regex(r.stdout, /^root:x:0:0/);
  t.is(lowerDirs(r.stdout.trimEnd().split('\n').at(-1)!).length, 2);
});

serial('a 128-layer protected image pulled by CRI runs, with 129 lower dirs in one overlay', async (t) => {
  t.timeout(120_000);
  await stack.withLogs(() => stack.containerd.cri.pullImage(`${HOST}/protected/deep:v1`));
  const r = await run(`${HOST}/protected/deep:v1`, ['cat /l0 /l126', 'touch /x 2>/dev/null || echo read-only', ROOT_OPTIONS].join('\n'));
  t.is(r.exitCode, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.deepEqual(lines.slice(0, 3), ['0', '126', 'read-only']);
  t.is(lowerDirs(lines[3]!).length, 129);
});

serial("a snapshotter restart keeps a running protected container's layers, and the last user unmounts them", async (t) => {
  const cri = stack.containerd.cri;
  const id = await cri.createContainer(pod.id, containerConfig({ name: `c${++containers}`, image: 'integrity.test/protected/app:v1', command: ['/bin/sleep', '3600'] }), pod.config);
  await cri.startContainer(id);
  await cri.waitForContainerState(id, 'CONTAINER_RUNNING');
  const mountpoints = mountpointsLayer();
  const mountId = async () => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === mountpoints)?.split(' ')[0];
  const before = await mountId();
  t.truthy(before);
  await stack.withLogs(() => stack.snapshotter.restart());
  t.is(await mountId(), before, 'the mount was adopted, not made again');
  const exec = await cri.execSync(id, ['/bin/cat', '/data/app']);
  t.is(Buffer.from(exec.stdout).toString(), 'protected app\n');
  await cri.stopContainer(id, 0);
  await cri.removeContainer(id);
  // containerd removes a container's snapshot from its backend in its next garbage collection; force one.
  await stack.containerd.ctr(['images', 'rm', '--sync', 'integrity.test/free/busybox:v1']);
  t.is(await mountId(), undefined, 'no container uses the mountpoints layer any more');
});
