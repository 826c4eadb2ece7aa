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
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { containerdSkipReason } from '../../support/containerd.js';
import { containerConfig, hostNetworkPod, runToExit, streamText, type ContainerSpec, type Pod } from '../../support/cri-pod.js';
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
  // Debian's symlinks, which a mountpoints layer must not hide.
  await busyboxImage(join(work, 'debian'), { tag: 'v1', layers: [[
    { path: 'run/' },
    { path: 'var/' },
    { path: 'var/run', type: 'symlink', linkTarget: '/run' },
    { path: 'etc/resolv.conf', type: 'symlink', linkTarget: '../run/resolv.conf' },
  ]] });
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
    await ctd.importLayout(join(work, 'debian'), 'integrity.test/protected/debian');
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

/** Runs `script` in a container of `image` in the pod, with a host directory as its /tmp volume (and `mounts`). */
async function run(image: string, script: string, mounts: ContainerSpec['mounts'] = []): Promise<Run> {
  const tmp = await mkdtemp(join(work, 'tmp-'));
  const result = await stack.withLogs(() =>
    runToExit(stack.containerd.cri, pod, {
      name: `c${++containers}`,
      image,
      command: ['/bin/sh', '-c', script],
      mounts: [{ containerPath: '/tmp', hostPath: tmp }, ...mounts],
    }),
  );
  return { exitCode: result.status.exit_code, stdout: streamText(result.log, 'stdout'), stderr: streamText(result.log, 'stderr'), tmp };
}

/** The root mount's overlay options, as the container sees them. */
const ROOT_OPTIONS = `awk '$5 == "/" { print $NF }' /proc/self/mountinfo`;

function lowerDirs(options: string): string[] {
  return (/(?:^|,)lowerdir=([^,]*)/.exec(options)?.[1] ?? '').split(':').filter(Boolean);
}

/** The mount points of the mountpoints layers built so far (from the snapshotter's log), one per image chain. */
function mountpointsLayers(): string[] {
  return stack.snapshotter.logs().filter((l) => l.msg === 'mountpoints layer built').map((l) => join(stack.snapshotter.mountsDir, String(l.layer)));
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
  t.true(mountpointsLayers().includes(lowerDirs(options)[0]!), 'the mountpoints layer is on top');
  t.is(lowerDirs(options).length, 3, 'mountpoints layer, app layer, busybox layer');
});

serial('an unprotected image keeps a writable root', async (t) => {
  const r = await run('integrity.test/free/app:v1', ['touch /x && echo wrote', 'cat /data/app', ROOT_OPTIONS].join('\n'));
  t.is(r.exitCode, 0, r.stderr);
  const [wrote, app, options] = r.stdout.split('\n');
  t.is(wrote, 'wrote');
  t.is(app, 'free app');
  t.regex(options!, /upperdir=/);
  t.false(lowerDirs(options!).some((dir) => mountpointsLayers().includes(dir)));
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

serial("the mountpoints layer keeps the image's symlinks: /var/run -> /run and /etc/resolv.conf -> ../run/resolv.conf", async (t) => {
  const secrets = await mkdtemp(join(work, 'serviceaccount-'));
  await writeFile(join(secrets, 'token'), 'a-token\n');
  const r = await run('integrity.test/protected/debian:v1', [
    'echo "var/run -> $(readlink /var/run)"',
    'echo "etc/resolv.conf -> $(readlink /etc/resolv.conf)"',
    'cat /etc/resolv.conf',
    'cat /var/run/secrets/kubernetes.io/serviceaccount/token',
    'cat /etc/hosts > /dev/null && echo hosts=ok',
    'touch /x 2>/dev/null || echo read-only',
    ROOT_OPTIONS,
  ].join('\n'), [{ containerPath: '/var/run/secrets/kubernetes.io/serviceaccount', hostPath: secrets, readonly: true }]);
  t.is(r.exitCode, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  t.is(lines[0], 'var/run -> /run', 'the symlink is intact in the container');
  t.is(lines[1], 'etc/resolv.conf -> ../run/resolv.conf');
  t.regex(r.stdout, /^nameserver 192\.0\.2\.53$/m, "CRI's resolv.conf, mounted where the symlink leads");
  t.regex(r.stdout, /^a-token$/m, 'the serviceaccount volume, mounted at /run/secrets/…');
  t.regex(r.stdout, /^hosts=ok$/m);
  t.regex(r.stdout, /^read-only$/m);
  const options = lines.at(-1)!;
  t.notRegex(options, /upperdir=/);
  t.true(mountpointsLayers().includes(lowerDirs(options)[0]!));
  const built = stack.snapshotter.logs().filter((l) => l.msg === 'mountpoints layer built').find((l) => join(stack.snapshotter.mountsDir, String(l.layer)) === lowerDirs(options)[0]);
  const entries = built?.entries as string[];
  t.true(entries.includes('run/secrets/kubernetes.io/serviceaccount') && entries.includes('run/resolv.conf'), JSON.stringify(entries));
  t.false(entries.some((e) => e.startsWith('var')), 'nothing in the layer hides /var/run');
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

serial("a snapshotter restart keeps a running protected container's layers; unused, they go when the daemon stops", async (t) => {
  const cri = stack.containerd.cri;
  const id = await cri.createContainer(pod.id, containerConfig({ name: `c${++containers}`, image: 'integrity.test/protected/app:v1', command: ['/bin/sleep', '3600'] }), pod.config);
  await cri.startContainer(id);
  await cri.waitForContainerState(id, 'CONTAINER_RUNNING');
  const root = Buffer.from((await cri.execSync(id, ['/bin/sh', '-c', ROOT_OPTIONS])).stdout).toString().trim();
  const mountpoints = lowerDirs(root)[0]!;
  t.true(mountpointsLayers().includes(mountpoints));
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
  t.is(await mountId(), before, 'unused now, but kept mounted for its grace period (for the next container)');
  await stack.snapshotter.kill();
  t.is(await mountId(), undefined, 'a stopping daemon unmounts the layers nobody uses');
});
