/**
 * The snapshotter's configuration: a TOML file, checked once at start-up into
 * a frozen, typed object. Every key has a default, so no file is needed.
 * Unknown keys, wrong types and options that contradict each other are
 * ConfigErrors naming the key and the fix: a typo must not silently fall back
 * to a default. Keys are documented in docs/configuration.md.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { parse, TomlError } from 'smol-toml';
import { ConfigError, isNotFound } from './errors.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * How a layer image is mounted: through a read-only loop device, or by
 * handing the file to EROFS directly (kernel 6.12 and later); `auto` picks
 * the file when the kernel can.
 */
export const MOUNT_BACKINGS = ['auto', 'loop', 'file'] as const;
export type MountBacking = (typeof MOUNT_BACKINGS)[number];

/**
 * Which containers get a read-only root filesystem (no overlay upper dir):
 * those of images `rootfs.protected_images` names, or every one.
 */
export const READ_ONLY_MODES = ['protected', 'all'] as const;
export type ReadOnlyMode = (typeof READ_ONLY_MODES)[number];

/**
 * What runc mounts onto in a container (CRI and Kubernetes defaults): the
 * mountpoints layer holds these as empty directories and files, so nothing
 * has to be created in a read-only root filesystem.
 */
export const DEFAULT_MOUNTPOINT_DIRS: readonly string[] = [
  '/proc', '/sys', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/tmp', '/run',
  '/var/run/secrets/kubernetes.io/serviceaccount',
];
export const DEFAULT_MOUNTPOINT_FILES: readonly string[] = ['/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/dev/termination-log'];

/**
 * Whether layers are mounted through dm-verity devices: `required` refuses
 * every layer mount where the kernel has no dm-verity, `auto` uses it where
 * the kernel has it and otherwise mounts without it (logged per layer,
 * counted in status and metrics), `off` never uses it.
 */
export const VERITY_MODES = ['required', 'auto', 'off'] as const;
export type VerityMode = (typeof VERITY_MODES)[number];

export interface SnapshotterConfig {
  /** Metadata database, snapshot directories and layer files. */
  readonly root: string;
  /** Unix socket of the gRPC service containerd's proxy_plugins entry points at. */
  readonly address: string;
  readonly log: { readonly level: LogLevel };
  readonly mounts: {
    /** Where each committed layer is mounted; short, because every path goes into overlay's one-page option string. */
    readonly dir: string;
    readonly backing: MountBacking;
    /** Seconds an unused layer stays mounted for its next user. */
    readonly idleSeconds: number;
  };
  /** containerd's API socket: the content and image services the pull path reads layers and images from. */
  readonly containerdAddress: string;
  readonly rootfs: {
    readonly readOnly: ReadOnlyMode;
    /** Image-name patterns (policy/image-patterns.ts) whose containers get a read-only root filesystem. */
    readonly protectedImages: readonly string[];
    /** Absolute paths the mountpoints layer holds as empty directories and as empty files. */
    readonly mountpointDirs: readonly string[];
    readonly mountpointFiles: readonly string[];
  };
  readonly verity: VerityMode;
  /** Memory for the upper dirs `ctr image import` unpacks into (service/unpack-scratch.ts); 0 = none. */
  readonly unpack: { readonly memoryMib: number };
  /** Fetching the layer blobs of CRI pulls that containerd has not fetched yet (docs/snapshotter.md, "Fetching layers"). */
  readonly registry: {
    readonly fetchLayers: boolean;
    /** containerd's registry hosts directory (CRI's `registry.config_path`). */
    readonly configPath: string;
  };
  readonly status: {
    /** Seconds between checks of every mounted layer's verity device; 0 = never. */
    readonly intervalSeconds: number;
  };
  readonly metrics: {
    /** `host:port` serving Prometheus `/metrics`; '' = no listener. */
    readonly address: string;
  };
  /** Signed images on the node (docs/signatures.md, "On the node"). */
  readonly signatures: {
    /** Image-name patterns whose layers are refused unless their manifest is signed and verifies. */
    readonly requiredImages: readonly string[];
    /** Trust root files or directories; undefined = the package's trust.d and /etc/containerd-integrity/trust.d. */
    readonly trustDirs: readonly string[] | undefined;
  };
}

export const DEFAULT_ROOT = '/var/lib/containerd-integrity';
export const DEFAULT_ADDRESS = '/run/containerd-integrity/snapshotter.sock';
export const DEFAULT_CONTAINERD_ADDRESS = '/run/containerd/containerd.sock';
/** Where containerd's documentation puts the registry hosts directory. */
export const DEFAULT_REGISTRY_CONFIG_PATH = '/etc/containerd/certs.d';
/** Under the root; Cleanup removes anything in it the metadata does not know. */
export const SNAPSHOTS_DIR = 'snapshots';

/** Command-line flags; they win over the file. Relative paths are taken from the working directory. */
export interface ConfigOverrides {
  root?: string;
  address?: string;
}

const DOCS = 'see docs/configuration.md';

/** Reads and checks `file` (none: defaults only). */
export function loadSnapshotterConfig(file: string | undefined, overrides: ConfigOverrides = {}): SnapshotterConfig {
  if (file === undefined) return parseSnapshotterConfig('', '(defaults)', overrides);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`, {
      hint: isNotFound(err) ? 'check the --config path, or leave --config out to use the defaults' : 'check the file permissions',
      cause: err,
    });
  }
  return parseSnapshotterConfig(text, file, overrides);
}

/** Checks TOML `text`; `source` names it in errors. */
export function parseSnapshotterConfig(text: string, source: string, overrides: ConfigOverrides = {}): SnapshotterConfig {
  const top = new Table(parseToml(text, source), '', source);
  const fromFlag = (value: string | undefined) => (value === undefined ? undefined : resolve(value));
  // The file's values are checked even when a flag replaces them.
  const rootInFile = top.path('root', DEFAULT_ROOT);
  const addressInFile = top.path('address', DEFAULT_ADDRESS);
  const root = fromFlag(overrides.root) ?? rootInFile;
  const address = fromFlag(overrides.address) ?? addressInFile;
  const log = top.table('log');
  const level = log.oneOf('level', LOG_LEVELS, 'info');
  const mounts = top.table('mounts');
  const dir = mounts.path('dir', join(root, 'm'));
  const backing = mounts.oneOf('backing', MOUNT_BACKINGS, 'auto');
  const idleSeconds = mounts.wholeNumber('idle_seconds', 30, 0, 3_600);
  const verity = top.oneOf('verity', VERITY_MODES, 'auto');
  const intervalSeconds = top.table('status').wholeNumber('interval_seconds', 60, 0, 86_400);
  const metricsAddress = top.table('metrics').listenAddress('address', '');
  const containerdAddress = top.path('containerd_address', DEFAULT_CONTAINERD_ADDRESS);
  const unpack = { memoryMib: top.table('unpack').wholeNumber('memory_mib', 512, 0, 1 << 20) };
  const registryTable = top.table('registry');
  const registry = {
    fetchLayers: registryTable.boolean('fetch_layers', true),
    configPath: registryTable.path('config_path', DEFAULT_REGISTRY_CONFIG_PATH),
  };
  const signaturesTable = top.table('signatures');
  const signatures = {
    requiredImages: signaturesTable.imagePatterns('required_images'),
    trustDirs: signaturesTable.optionalPathList('trust_dirs'),
  };
  const rootfsTable = top.table('rootfs');
  const rootfs = {
    readOnly: rootfsTable.oneOf('read_only', READ_ONLY_MODES, 'protected'),
    protectedImages: rootfsTable.imagePatterns('protected_images'),
    mountpointDirs: rootfsTable.pathList('mountpoint_dirs', DEFAULT_MOUNTPOINT_DIRS),
    mountpointFiles: rootfsTable.pathList('mountpoint_files', DEFAULT_MOUNTPOINT_FILES),
  };
  top.finish();

  const config: SnapshotterConfig = {
    root,
    address,
    log: { level },
    mounts: { dir, backing, idleSeconds },
    verity,
    unpack,
    registry,
    status: { intervalSeconds },
    metrics: { address: metricsAddress },
    containerdAddress,
    rootfs,
    signatures,
  };
  checkConflicts(config, source);
  return deepFreeze(config);
}

function checkConflicts(config: SnapshotterConfig, source: string): void {
  checkMountpoints(config.rootfs, source);
  const snapshots = join(config.root, SNAPSHOTS_DIR);
  if (isWithin(config.mounts.dir, snapshots)) {
    throw new ConfigError(`${source}: mounts.dir ${config.mounts.dir} is inside ${snapshots}, which Cleanup empties`, {
      hint: `leave mounts.dir unset (default ${join(config.root, 'm')}) or choose a directory outside ${snapshots}; ${DOCS}`,
    });
  }
  if (isWithin(config.address, config.mounts.dir)) {
    throw new ConfigError(`${source}: address ${config.address} is inside mounts.dir ${config.mounts.dir}, where layer mounts would hide it`, {
      hint: `put the socket elsewhere (default ${DEFAULT_ADDRESS}); ${DOCS}`,
    });
  }
  if (isWithin(config.address, snapshots)) {
    throw new ConfigError(`${source}: address ${config.address} is inside ${snapshots}, which Cleanup empties`, {
      hint: `put the socket elsewhere (default ${DEFAULT_ADDRESS}); ${DOCS}`,
    });
  }
}

/** A path cannot be both, and a file cannot have entries below it. */
function checkMountpoints(rootfs: SnapshotterConfig['rootfs'], source: string): void {
  for (const file of rootfs.mountpointFiles) {
    const inside = [...rootfs.mountpointDirs, ...rootfs.mountpointFiles].find((p) => p !== file && isWithin(p, file));
    if (rootfs.mountpointDirs.includes(file) || inside !== undefined) {
      throw new ConfigError(`${source}: rootfs.mountpoint_files has ${file}, which ${inside ? `would have to be a directory for ${inside}` : 'rootfs.mountpoint_dirs lists too'}`, {
        hint: `list ${file} in one of rootfs.mountpoint_dirs and rootfs.mountpoint_files only; ${DOCS}`,
      });
    }
  }
}

function isWithin(path: string, dir: string): boolean {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function parseToml(text: string, source: string): Record<string, unknown> {
  try {
    return parse(text) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof TomlError) {
      throw new ConfigError(`${source}:${err.line}:${err.column}: ${err.message.split('\n')[0]}`, {
        hint: 'fix the TOML syntax at that line',
        cause: err,
      });
    }
    throw err;
  }
}

/** One TOML table; remembers which keys were read so that finish() can name the unknown ones. */
class Table {
  private readonly read = new Set<string>();
  private readonly children: Table[] = [];

  constructor(
    private readonly values: Record<string, unknown>,
    private readonly prefix: string,
    private readonly source: string,
  ) {}

  table(key: string): Table {
    const value = this.take(key);
    if (value !== undefined && !isPlainTable(value)) throw this.wrongType(key, value, 'a table');
    const child = new Table((value as Record<string, unknown> | undefined) ?? {}, `${this.prefix}${key}.`, this.source);
    this.children.push(child);
    return child;
  }

  /** An absolute path; trailing slashes are dropped. */
  path(key: string, fallback: string): string {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'string') throw this.wrongType(key, value, 'a string');
    if (!isAbsolute(value)) {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} = ${JSON.stringify(value)} is not an absolute path`, {
        hint: `write the full path, e.g. ${JSON.stringify(fallback)}; ${DOCS}`,
      });
    }
    return resolve(value);
  }

  /** An array of strings. */
  stringList(key: string, fallback: readonly string[]): string[] {
    const value = this.take(key);
    if (value === undefined) return [...fallback];
    if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw this.wrongType(key, value, 'an array of strings');
    return value as string[];
  }

  /** Image-name patterns (policy/image-patterns.ts: `*` and `?` are wildcards); none by default. */
  imagePatterns(key: string): string[] {
    const values = this.stringList(key, []);
    const bad = values.find((v) => v === '' || /\s/.test(v));
    if (bad !== undefined) {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} has ${JSON.stringify(bad)}, which is empty or contains white space`, {
        hint: `write image names such as "registry.example/team/*" (* = any characters, ? = one character); ${DOCS}`,
      });
    }
    return values;
  }

  /** pathList() whose absence is told apart from an empty list: undefined when the key is absent. */
  optionalPathList(key: string): string[] | undefined {
    if (this.values[key] !== undefined) return this.pathList(key, []);
    this.take(key);
    return undefined;
  }

  /** An array of absolute paths, normalized, without duplicates. */
  pathList(key: string, fallback: readonly string[]): string[] {
    const values = this.stringList(key, fallback);
    const relativeOne = values.find((v) => !isAbsolute(v));
    if (relativeOne !== undefined) {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} has ${JSON.stringify(relativeOne)}, which is not an absolute path`, {
        hint: `write full paths, e.g. ${JSON.stringify(fallback[0] ?? '/tmp')}; ${DOCS}`,
      });
    }
    return [...new Set(values.map((v) => resolve(v)))];
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], fallback: T): T {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} = ${JSON.stringify(value)} is not one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, {
        hint: `set ${this.prefix}${key} to one of those, or remove it for ${JSON.stringify(fallback)}; ${DOCS}`,
      });
    }
    return value as T;
  }

  boolean(key: string, fallback: boolean): boolean {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} = ${JSON.stringify(value)} is not true or false`, {
        hint: `write it without quotes, e.g. ${this.prefix}${key} = ${fallback}; ${DOCS}`,
      });
    }
    return value;
  }

  wholeNumber(key: string, fallback: number, min: number, max: number): number {
    const value = this.take(key);
    if (value === undefined) return fallback;
    // smol-toml gives integers as numbers (it refuses any it cannot hold exactly).
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} = ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`, {
        hint: `write it without quotes, e.g. ${this.prefix}${key} = ${fallback}; ${DOCS}`,
      });
    }
    return value;
  }

  /** `host:port` (an IPv6 host in brackets) to listen on, or '' for none. */
  listenAddress(key: string, fallback: string): string {
    const value = this.take(key);
    if (value === undefined) return fallback;
    if (typeof value !== 'string') throw this.wrongType(key, value, 'a string');
    if (value === '') return value;
    const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
    // Port 0 lets the kernel pick one (tests); the daemon logs the one it got.
    if (!m || Number(m[2]) > 65535) {
      throw new ConfigError(`${this.source}: ${this.prefix}${key} = ${JSON.stringify(value)} is not host:port`, {
        hint: `e.g. "127.0.0.1:9469" (or "[::1]:9469"); "" turns it off; ${DOCS}`,
      });
    }
    return value;
  }

  /** Throws for the first key nobody asked for, here or in a sub-table. */
  finish(): void {
    for (const key of Object.keys(this.values)) {
      if (!this.read.has(key)) {
        const known = [...this.read].sort().join(', ');
        throw new ConfigError(`${this.source}: unknown key ${this.prefix}${key}`, {
          hint: `check the spelling; known keys${this.prefix ? ` in [${this.prefix.slice(0, -1)}]` : ''}: ${known}; ${DOCS}`,
        });
      }
    }
    for (const child of this.children) child.finish();
  }

  private take(key: string): unknown {
    this.read.add(key);
    return this.values[key];
  }

  private wrongType(key: string, value: unknown, expected: string): ConfigError {
    return new ConfigError(`${this.source}: ${this.prefix}${key} must be ${expected}, not ${JSON.stringify(value)}`, { hint: DOCS });
  }
}

function isPlainTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function deepFreeze<T extends object>(obj: T): T {
  for (const value of Object.values(obj)) if (typeof value === 'object' && value !== null) deepFreeze(value as object);
  return Object.freeze(obj);
}
