/**
 * `integrityctl snapshotter serve` for a test: its own temp root, socket,
 * short layer mount dir and generated config, its JSON log in a file the test
 * can read back.
 *
 * The daemon must serve before containerd starts: containerd dials a proxy
 * snapshotter at boot and, finding no socket, may fail the first requests
 * while it backs off. The daemon itself connects to containerd only when a
 * request needs it, so it is pointed at a symlink in its own dir that
 * startIntegrityStack() aims at containerd's socket once containerd runs.
 *
 *   const stack = await startIntegrityStack({ protectedImages: ['integrity.test/protected/*'] });
 *   t.teardown(() => stack.stop());
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'smol-toml';
import { wallClock } from '../../snapshotter/core/clock.js';
import { LAYER_IMAGE } from '../../snapshotter/service/layers/store.js';
import { SqliteMetadataStore } from '../../snapshotter/service/metadata/sqlite.js';
import { Containerd, unmountUnder, writeRegistryHosts, type ContainerdOptions } from './containerd.js';

const MAIN = fileURLToPath(new URL('../../snapshotter/cli/main.js', import.meta.url));

export interface IntegritySnapshotterOptions {
  /** Default: containerdLink. */
  containerdAddress?: string;
  protectedImages?: string[];
  readOnly?: 'protected' | 'all';
  /** `mounts.backing` (default: the daemon's, `auto`). */
  backing?: 'auto' | 'loop' | 'file';
  /** The daemon's `log.level` (default `debug`, so that tests can read every decision). */
  snapshotterLogLevel?: 'debug' | 'info';
  /** `[signatures]`: images that must be signed, trust root files or directories (default: the node's). */
  signatures?: { requiredImages?: string[]; trustDirs?: string[] };
  /** `metrics.address`, e.g. `127.0.0.1:0` (the bound one is in the `snapshotter serving` log line). */
  metricsAddress?: string;
  /**
   * The registry hosts the daemon fetches layer blobs from, as containerd's
   * (`<host>` → endpoint); default none, so a test never reads the machine's
   * /etc/containerd/certs.d.
   */
  registryMirrors?: Record<string, string>;
  /** `registry.fetch_layers` (default: the daemon's, on). */
  fetchLayers?: boolean;
}

/** One parsed log line of the daemon (pino JSON). */
export type LogLine = Record<string, unknown> & { msg?: string };

export class IntegritySnapshotter {
  /** Short: it holds the socket and the layer mount dir, whose length counts in overlay's option page. */
  readonly dir: string;
  readonly root: string;
  readonly address: string;
  readonly mountsDir: string;
  readonly configFile: string;
  readonly logFile: string;
  /** The daemon's `containerd_address`: a symlink to containerd's socket once there is one. */
  readonly containerdLink: string;
  #child: ChildProcess | undefined;
  #exit: string | undefined;
  #options: IntegritySnapshotterOptions = {};

  private constructor(dir: string) {
    this.dir = dir;
    this.root = join(dir, 'root');
    this.address = join(dir, 's.sock');
    this.mountsDir = join(dir, 'm');
    this.configFile = join(dir, 'config.toml');
    this.logFile = join(dir, 'snapshotter.log');
    this.containerdLink = join(dir, 'containerd.sock');
  }

  /** Reserves the directory and socket path; nothing runs yet. */
  static async create(): Promise<IntegritySnapshotter> {
    return new IntegritySnapshotter(await mkdtemp('/tmp/isn-'));
  }

  /** Writes the config and starts the daemon; resolves once its socket exists. */
  async start(options: IntegritySnapshotterOptions): Promise<void> {
    this.#options = options;
    const hostsDir = join(this.dir, 'hosts');
    await writeRegistryHosts(hostsDir, options.registryMirrors ?? {});
    await writeFile(
      this.configFile,
      stringify({
        root: this.root,
        address: this.address,
        containerd_address: options.containerdAddress ?? this.containerdLink,
        log: { level: options.snapshotterLogLevel ?? 'debug' },
        mounts: { dir: this.mountsDir, ...(options.backing ? { backing: options.backing } : {}) },
        rootfs: { read_only: options.readOnly ?? 'protected', protected_images: options.protectedImages ?? [] },
        ...(options.signatures ? { signatures: signaturesTable(options.signatures) } : {}),
        ...(options.metricsAddress ? { metrics: { address: options.metricsAddress } } : {}),
        registry: { config_path: hostsDir, ...(options.fetchLayers !== undefined ? { fetch_layers: options.fetchLayers } : {}) },
      }),
    );
    const serving = () => this.logs().filter((l) => l.msg === 'snapshotter serving').length;
    const before = serving();
    const log = openSync(this.logFile, 'a');
    try {
      this.#child = spawn(process.execPath, [MAIN, 'snapshotter', 'serve', '--config', this.configFile], { stdio: ['ignore', log, log] });
    } finally {
      closeSync(log);
    }
    this.#exit = undefined;
    this.#child.on('exit', (code, signal) => {
      this.#exit = signal ? `killed by ${signal}` : `exit status ${code}`;
    });
    for (const deadline = Date.now() + 20_000; !existsSync(this.address) || serving() === before; ) {
      if (this.#exit) throw new Error(`the snapshotter ended during startup (${this.#exit}):\n${this.logTail()}`);
      if (Date.now() > deadline) throw new Error(`the snapshotter did not start within 20 s:\n${this.logTail()}`);
      await sleep(50);
    }
  }

  /** Every log line so far. */
  logs(): LogLine[] {
    let text: string;
    try {
      text = readFileSync(this.logFile, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').flatMap((line) => {
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no snapshotter log)';
    }
  }

  /**
   * The image file of the committed layer whose chain ID the daemon checked
   * against `chainId` when it built the layer from its blob (read from its
   * metadata database, read-only, beside the running daemon).
   */
  layerImageOf(chainId: string): string | undefined {
    const store = new SqliteMetadataStore(join(this.root, 'metadata.db'), { clock: wallClock(), readOnly: true });
    try {
      const layer = store
        .listAll()
        .find((s) => s.kind === 'committed' && store.layerOrigin(s.namespace, s.key).chainId === chainId);
      return layer && join(this.root, 'snapshots', String(layer.id), LAYER_IMAGE);
    } finally {
      store.close();
    }
  }

  /** Stops the daemon (SIGTERM); the layer mounts stay, as after a real restart. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || this.#exit) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000, undefined, { ref: false })]);
    if (!this.#exit) {
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** The daemon's process id while it runs. */
  get pid(): number | undefined {
    return this.#exit === undefined ? this.#child?.pid : undefined;
  }

  /** SIGKILL, as a crash or the OOM killer ends it: no shutdown code runs. Resolves once it is gone. */
  async crash(): Promise<void> {
    const child = this.#child;
    if (!child || this.#exit) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  }

  /** Starts the daemon again (after crash() or kill()) with the same configuration. */
  async startAgain(): Promise<void> {
    await this.start(this.#options);
  }

  /** Stops the daemon and starts it again with the same configuration, as a node's restart of the service does. */
  async restart(): Promise<void> {
    await this.kill();
    await this.start(this.#options);
  }

  /** Stops the daemon, unmounts its layers and removes its directory. Stop containerd first. */
  async stop(): Promise<void> {
    await this.kill();
    await unmountUnder(this.dir);
    await rm(this.dir, { recursive: true, force: true });
  }
}

function signaturesTable(options: NonNullable<IntegritySnapshotterOptions['signatures']>): Record<string, string[]> {
  return {
    ...(options.requiredImages ? { required_images: options.requiredImages } : {}),
    ...(options.trustDirs ? { trust_dirs: options.trustDirs } : {}),
  };
}

export interface IntegrityStack {
  containerd: Containerd;
  snapshotter: IntegritySnapshotter;
  /** Runs `fn`; an error it throws carries the tails of containerd's and the snapshotter's logs. */
  withLogs<T>(fn: () => Promise<T>): Promise<T>;
  /** Stops containerd, then the snapshotter; removes both temp dirs. */
  stop(): Promise<void>;
}

/**
 * A private containerd whose CRI and ctr calls use the integrity snapshotter
 * (registered as proxy `integrity`), and that snapshotter, pointed back at
 * containerd. On failure nothing is left running.
 */
export async function startIntegrityStack(
  options: IntegritySnapshotterOptions & Pick<ContainerdOptions, 'logLevel'> & {
    /** Hosts only containerd is told about, on top of `registryMirrors` (e.g. so the snapshotter cannot reach one). */
    containerdRegistryMirrors?: Record<string, string>;
  } = {},
): Promise<IntegrityStack> {
  const snapshotter = await IntegritySnapshotter.create();
  let containerd: Containerd | undefined;
  const stop = async () => {
    await containerd?.stop();
    await snapshotter.stop();
  };
  try {
    await snapshotter.start(options);
    containerd = await Containerd.start({
      snapshotter: 'integrity',
      proxySnapshotters: { integrity: snapshotter.address },
      ...(options.registryMirrors || options.containerdRegistryMirrors
        ? { registryMirrors: { ...options.registryMirrors, ...options.containerdRegistryMirrors } }
        : {}),
      ...(options.logLevel ? { logLevel: options.logLevel } : {}),
    });
    await symlink(containerd.address, snapshotter.containerdLink);
  } catch (err) {
    await stop();
    throw err;
  }
  const ctd = containerd;
  return {
    containerd: ctd,
    snapshotter,
    withLogs: async (fn) => {
      try {
        return await ctd.withLog(fn);
      } catch (err) {
        if (err instanceof Error) err.message += `\n--- snapshotter log (tail, ${snapshotter.logFile}) ---\n${snapshotter.logTail(25)}`;
        throw err;
      }
    },
    stop,
  };
}
