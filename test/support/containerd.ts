/**
 * A private containerd 1.6 for one test: its own root, state, socket and
 * generated config, never the system's. CRI is configured the way a node with
 * containerd-integrity runs it (snapshot annotations on, a proxy snapshotter
 * when asked for) but with host networking only and a local pause image,
 * because no registry and no CNI network exist here.
 *
 *   const containerd = await Containerd.start({ snapshotter: 'integrity', proxySnapshotters: { integrity: sock } });
 *   t.teardown(() => containerd.stop());
 *   await containerd.importPauseImage();
 *   await containerd.withLog(async () => { ... });   // failures carry containerd's log tail
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'smol-toml';
import { CommandError, missingPrograms, runCommand, type CommandOptions, type CommandResult } from './command.js';
import { CriClient } from './cri-client.js';
import { pauseImage, tarLayout } from './oci-image.js';

export const CONTAINERD = '/usr/bin/containerd';
export const CTR = '/usr/bin/ctr';

/** The namespace CRI keeps its images, sandboxes and containers in. */
export const CRI_NAMESPACE = 'k8s.io';

/** The sandbox image CRI is configured with; `importPauseImage()` provides it. */
export const PAUSE_IMAGE = 'integrity.test/pause:3.9';

/** Errors whose message already ends with a log tail. */
const withLogTail = new WeakSet<Error>();

/** Snapshotters containerd 1.6 has built in and that work here; others must be proxies. */
const BUILTIN_SNAPSHOTTERS = ['overlayfs', 'native'];

/** The line containerd logs once every plugin is loaded and the API is served. */
const BOOTED = 'containerd successfully booted';

/** Why a private containerd cannot run here, or undefined when it can. */
export function containerdSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (containerd mounts snapshots and runs runc)';
  return missingPrograms({
    [CONTAINERD]: 'containerd',
    [CTR]: 'containerd',
    '/usr/sbin/runc': 'runc',
    '/usr/bin/containerd-shim-runc-v2': 'containerd',
    '/bin/busybox': 'busybox-static',
  });
}

export interface ContainerdOptions {
  /** CRI's snapshotter, and the one `ctr` calls here use (default `overlayfs`). */
  snapshotter?: string;
  /** Proxy snapshotters to register, name → unix socket (`[proxy_plugins.<name>] type = "snapshot"`). */
  proxySnapshotters?: Record<string, string>;
  /**
   * Registry mirrors for CRI pulls: registry host as images name it (e.g.
   * `registry.test`) → plain-HTTP endpoint (e.g. `Registry.url`). Written as
   * a `config_path` hosts directory, the mechanism containerd 1.6 documents.
   */
  registryMirrors?: Record<string, string>;
  /** containerd's log level (default `info`; `debug` logs every snapshot call). */
  logLevel?: 'debug' | 'info' | 'warn';
  /** How long containerd and its CRI plugin may take to serve (default 30 s). */
  startTimeoutMs?: number;
}

export interface CtrOptions extends CommandOptions {
  /** Default: CRI's namespace, so that CRI sees what ctr imports. */
  namespace?: string;
}

export class Containerd {
  /** Temp dir holding everything below; short, because it contains unix sockets. */
  readonly dir: string;
  readonly root: string;
  readonly state: string;
  /** The containerd API socket; CRI is served on it too. */
  readonly address: string;
  readonly configFile: string;
  readonly logFile: string;
  /** `config_path` of the registry hosts, when mirrors were given. */
  readonly hostsDir: string | undefined;
  readonly snapshotter: string;
  readonly #child: ChildProcess;
  /** How containerd ended, once it has. */
  #exit: string | undefined;
  #cri: CriClient | undefined;
  #stopped = false;

  private constructor(dir: string, options: ContainerdOptions, child: ChildProcess) {
    this.dir = dir;
    this.root = join(dir, 'root');
    this.state = join(dir, 'state');
    this.address = join(dir, 'containerd.sock');
    this.configFile = join(dir, 'config.toml');
    this.logFile = join(dir, 'containerd.log');
    this.hostsDir = options.registryMirrors ? join(dir, 'hosts') : undefined;
    this.snapshotter = options.snapshotter ?? 'overlayfs';
    this.#child = child;
    child.on('exit', (code, signal) => {
      this.#exit = signal ? `killed by ${signal}` : `exit status ${code}`;
    });
    child.on('error', (err) => {
      this.#exit = `could not run ${CONTAINERD}: ${err.message}`;
    });
  }

  /** Starts containerd and resolves once its API and CRI both answer; on failure nothing is left behind. */
  static async start(options: ContainerdOptions = {}): Promise<Containerd> {
    const reason = containerdSkipReason();
    if (reason) throw new Error(`cannot start containerd: ${reason}`);
    const snapshotter = options.snapshotter ?? 'overlayfs';
    if (!BUILTIN_SNAPSHOTTERS.includes(snapshotter) && !options.proxySnapshotters?.[snapshotter]) {
      throw new Error(`snapshotter ${JSON.stringify(snapshotter)} is not built into containerd; register it in proxySnapshotters`);
    }
    const dir = await mkdtemp('/tmp/ctd-');
    let child: ChildProcess;
    try {
      const paths = { root: join(dir, 'root'), state: join(dir, 'state'), cni: join(dir, 'cni') };
      await Promise.all(Object.values(paths).map((path) => mkdir(path, { recursive: true })));
      const hostsDir = options.registryMirrors ? join(dir, 'hosts') : undefined;
      if (hostsDir) await writeRegistryHosts(hostsDir, options.registryMirrors!);
      await writeFile(join(dir, 'config.toml'), containerdConfig({
        root: paths.root,
        state: paths.state,
        address: join(dir, 'containerd.sock'),
        cniConfDir: paths.cni,
        snapshotter,
        proxySnapshotters: options.proxySnapshotters ?? {},
        hostsDir,
      }));
      const log = openSync(join(dir, 'containerd.log'), 'a');
      try {
        child = spawn(CONTAINERD, ['--config', join(dir, 'config.toml'), '--log-level', options.logLevel ?? 'info'], {
          stdio: ['ignore', log, log],
        });
      } finally {
        closeSync(log);
      }
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    const containerd = new Containerd(dir, options, child);
    try {
      await containerd.#waitReady(options.startTimeoutMs ?? 30_000);
    } catch (err) {
      await containerd.stop();
      throw err;
    }
    return containerd;
  }

  /** The last `lines` lines of containerd's log (gone once stopped, with the temp dir). */
  logTail(lines = 60): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no containerd log)';
    }
  }

  /** Runs `fn`; an error it throws comes back with containerd's log tail in its message (once, however deeply nested). */
  async withLog<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof Error && !withLogTail.has(err)) {
        err.message += `\n--- containerd log (tail, ${this.logFile}) ---\n${this.logTail()}`;
        withLogTail.add(err);
      }
      throw err;
    }
  }

  /** A CRI client on this containerd, closed by stop(). */
  get cri(): CriClient {
    this.#cri ??= new CriClient(this.address);
    return this.#cri;
  }

  /** `ctr --address <sock> --namespace <ns> <args>`; a failure carries ctr's stderr and containerd's log tail. */
  async ctr(args: readonly string[], options: CtrOptions = {}): Promise<CommandResult> {
    const full = ['--address', this.address, '--namespace', options.namespace ?? CRI_NAMESPACE, ...args];
    return this.withLog(() => runCommand(CTR, full, options));
  }

  /**
   * Imports an OCI layout (each tag becomes `<repository>:<tag>`) with
   * `ctr image import`, unpacked into this containerd's snapshotter. ctr
   * needs a full name: a bare tag would become `docker.io/library/<tag>`.
   */
  async importLayout(layoutDir: string, repository: string, options: CtrOptions = {}): Promise<void> {
    const archive = join(this.dir, `import-${randomBytes(4).toString('hex')}.tar`);
    tarLayout(layoutDir, archive);
    try {
      await this.ctr(['images', 'import', '--snapshotter', this.snapshotter, '--base-name', repository, archive], options);
    } finally {
      await rm(archive, { force: true });
    }
  }

  /** Builds the pause image and imports it as PAUSE_IMAGE into CRI's namespace, so pod sandboxes can start. */
  async importPauseImage(): Promise<void> {
    const [repository, tag] = splitTag(PAUSE_IMAGE);
    const layout = join(this.dir, 'images', 'pause');
    await pauseImage(layout, tag);
    await this.importLayout(layout, repository);
  }

  /**
   * `ctr run` with this snapshotter: by default `--rm`, returning the
   * container's output once it has exited (failing when the command fails);
   * with `detach`, returning once it runs. runc's state and the I/O fifos go
   * under this instance: ctr's defaults are global paths, shared with every
   * other containerd on the machine and left behind by detached containers.
   */
  async run(image: string, command: readonly string[], options: CtrOptions & { id?: string; detach?: boolean } = {}): Promise<CommandResult> {
    const id = options.id ?? `ctr-${randomBytes(6).toString('hex')}`;
    return this.ctr([
      'run', options.detach ? '--detach' : '--rm',
      '--snapshotter', this.snapshotter,
      '--runc-root', join(this.state, 'runc'),
      '--fifo-dir', join(this.state, 'fifo'),
      image, id, ...command,
    ], options);
  }

  /**
   * `ctr images mount`: the image's root filesystem as this snapshotter
   * presents it (read-only), at a new dir under this instance. Returns the dir.
   */
  async mountImage(image: string, options: CtrOptions = {}): Promise<string> {
    const target = join(this.dir, `mnt-${randomBytes(4).toString('hex')}`);
    await mkdir(target);
    await this.ctr(['images', 'mount', '--snapshotter', this.snapshotter, image, target], options);
    return target;
  }

  /** Undoes mountImage, removing the view snapshot it made. */
  async unmountImage(target: string, options: CtrOptions = {}): Promise<void> {
    await this.ctr(['images', 'unmount', '--snapshotter', this.snapshotter, '--rm', target], options);
    await rm(target, { recursive: true, force: true });
  }

  /**
   * Kills every task, stops containerd, kills what survived it (shims of this
   * instance and their containers), unmounts everything under the temp dir
   * and removes it. Safe to call twice.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#cri?.close();
    if (this.#exit === undefined) {
      await this.#killTasks().catch(() => undefined);
      await this.#terminate();
    }
    await killShims(this.address);
    await unmountUnder(this.dir);
    await rm(this.dir, { recursive: true, force: true });
  }

  async #waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const fail = (why: string) => new Error(`containerd ${why}\n--- containerd log (tail) ---\n${this.logTail()}`);
    while (!(await readFile(this.logFile, 'utf8')).includes(BOOTED)) {
      if (this.#exit) throw fail(`ended during startup (${this.#exit})`);
      if (Date.now() > deadline) throw fail(`did not boot within ${timeoutMs} ms`);
      await sleep(50);
    }
    try {
      await this.cri.waitReady(Math.max(deadline - Date.now(), 1_000));
    } catch (err) {
      throw fail(`booted but CRI did not answer: ${(err as Error).message}`);
    }
  }

  /** SIGKILL and delete every task in every namespace, so no container outlives the test. */
  async #killTasks(): Promise<void> {
    const quiet: CtrOptions = { timeoutMs: 15_000 };
    const namespaces = (await runCommand(CTR, ['--address', this.address, 'namespaces', 'list', '--quiet'], quiet)).stdout.split('\n').filter(Boolean);
    for (const namespace of namespaces) {
      const base = ['--address', this.address, '--namespace', namespace];
      const tasks = (await runCommand(CTR, [...base, 'tasks', 'list', '--quiet'], quiet)).stdout.split('\n').filter(Boolean);
      for (const task of tasks) {
        await runCommand(CTR, [...base, 'tasks', 'delete', '--force', task], quiet).catch((err: unknown) => {
          if (!(err instanceof CommandError)) throw err;
        });
      }
    }
  }

  async #terminate(): Promise<void> {
    const exited = new Promise<void>((resolve) => {
      if (this.#exit) resolve();
      else this.#child.once('exit', () => resolve());
    });
    this.#child.kill('SIGTERM');
    // Unreferenced: a pending grace timer must not keep the test process alive.
    const graceful = await Promise.race([exited.then(() => true), sleep(10_000, false, { ref: false })]);
    if (!graceful) {
      this.#child.kill('SIGKILL');
      await exited;
    }
  }
}

interface ConfigInput {
  root: string;
  state: string;
  address: string;
  cniConfDir: string;
  snapshotter: string;
  proxySnapshotters: Record<string, string>;
  hostsDir: string | undefined;
}

/** containerd's config (version 2) for a private instance; every path it would otherwise share with the system is moved. */
export function containerdConfig(input: ConfigInput): string {
  const cri = {
    sandbox_image: PAUSE_IMAGE,
    // The sandbox may not lower its OOM score below containerd's here; without
    // this RunPodSandbox fails on this machine.
    restrict_oom_score_adj: true,
    // Host-network pods only: CNI is never called, but it must not read the
    // system's /etc/cni/net.d.
    cni: { conf_dir: input.cniConfDir, bin_dir: '/usr/lib/cni' },
    containerd: {
      snapshotter: input.snapshotter,
      // Passes containerd.io/snapshot/cri.* labels to Prepare on pulls: the snapshotter's fast path.
      disable_snapshot_annotations: false,
      default_runtime_name: 'runc',
      runtimes: {
        runc: { runtime_type: 'io.containerd.runc.v2', options: { Root: join(input.state, 'runc') } },
      },
    },
    ...(input.hostsDir ? { registry: { config_path: input.hostsDir } } : {}),
  };
  const proxies = Object.fromEntries(Object.entries(input.proxySnapshotters).map(([name, address]) => [name, { type: 'snapshot', address }]));
  return stringify({
    version: 2,
    root: input.root,
    state: input.state,
    // Snapshotters that cannot work here; disabled so the log holds only what matters.
    disabled_plugins: ['io.containerd.snapshotter.v1.aufs', 'io.containerd.snapshotter.v1.btrfs', 'io.containerd.snapshotter.v1.zfs', 'io.containerd.snapshotter.v1.devmapper'],
    grpc: { address: input.address },
    plugins: {
      'io.containerd.grpc.v1.cri': cri,
      'io.containerd.internal.v1.opt': { path: join(input.root, 'opt') },
    },
    proxy_plugins: proxies,
  });
}

/** One `<dir>/<host>/hosts.toml` per mirror: pulls of `<host>/...` go to `endpoint` over plain HTTP. */
export async function writeRegistryHosts(dir: string, mirrors: Record<string, string>): Promise<void> {
  for (const [host, endpoint] of Object.entries(mirrors)) {
    await mkdir(join(dir, host), { recursive: true });
    await writeFile(join(dir, host, 'hosts.toml'), stringify({
      server: endpoint,
      host: { [endpoint]: { capabilities: ['pull', 'resolve'] } },
    }));
  }
}

function splitTag(reference: string): [string, string] {
  const colon = reference.lastIndexOf(':');
  return [reference.slice(0, colon), reference.slice(colon + 1)];
}

/**
 * Shims outlive containerd by design. Ours are the ones started with our
 * socket as `-address`; their children are the containers. Both are killed,
 * and the containers' cgroups, which runc would have removed, go too.
 */
async function killShims(address: string): Promise<void> {
  const processes = await listProcesses();
  const shims = processes.filter((p) => p.argv.includes('-address') && p.argv[p.argv.indexOf('-address') + 1] === address);
  for (const shim of shims) {
    for (const container of processes.filter((p) => p.ppid === shim.pid)) {
      const cgroups = await cgroupDirs(container.pid).catch(() => []);
      signal(container.pid, 'SIGKILL');
      await exited(container.pid);
      for (const dir of cgroups) await rmdir(dir).catch(() => undefined);
    }
    signal(shim.pid, 'SIGKILL');
  }
}

/** The cgroup directories `pid` is in, one per hierarchy (cgroup v1 and v2), without the roots. */
export async function cgroupDirs(pid: number): Promise<string[]> {
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').flatMap((line) => {
    // <id> <parent> <dev> <root> <mount point> <options> [optional...] - <fstype> <source> <super options>
    const [fields, tail] = line.split(' - ');
    const [fstype, , superOptions] = tail?.split(' ') ?? [];
    const point = fields?.split(' ')[4];
    return point && (fstype === 'cgroup' || fstype === 'cgroup2') ? [{ point, fstype, options: superOptions?.split(',') ?? [] }] : [];
  });
  const dirs: string[] = [];
  for (const line of (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').filter(Boolean)) {
    const [, controllers = '', path = '/'] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    const mount = controllers === ''
      ? mounts.find((m) => m.fstype === 'cgroup2')
      : mounts.find((m) => m.fstype === 'cgroup' && controllers.split(',').every((c) => m.options.includes(c)));
    if (mount && path !== '/') dirs.push(join(mount.point, path));
  }
  return dirs;
}

/** Waits (up to 3 s) until `pid` is gone or a zombie. */
async function exited(pid: number): Promise<void> {
  const deadline = Date.now() + 3_000;
  while (Date.now() < deadline) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
    if (status === undefined || /^State:\s+Z/m.test(status)) return;
    await sleep(20);
  }
}

async function listProcesses(): Promise<{ pid: number; ppid: number; argv: string[] }[]> {
  const result: { pid: number; ppid: number; argv: string[] }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      result.push({ pid: Number(entry), ppid, argv });
    } catch {
      // Gone while we looked.
    }
  }
  return result;
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Already gone.
  }
}

/** Unmounts every mount under `dir`, deepest first (lazily if busy), so the dir can be removed. */
export async function unmountUnder(dir: string): Promise<void> {
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  const points = mountinfo.split('\n')
    .map((line) => line.split(' ')[4])
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .map((point) => point.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))));
  // Later mounts may sit on earlier ones: undo them in reverse order.
  for (const point of points.reverse()) {
    await runCommand('umount', [point], { timeoutMs: 10_000 }).catch(() => runCommand('umount', ['--lazy', point], { timeoutMs: 10_000 }).catch(() => undefined));
  }
}
