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
  };
}

export const DEFAULT_ROOT = '/var/lib/containerd-integrity';
export const DEFAULT_ADDRESS = '/run/containerd-integrity/snapshotter.sock';
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
  top.finish();

  const config: SnapshotterConfig = { root, address, log: { level }, mounts: { dir, backing } };
  checkConflicts(config, source);
  return deepFreeze(config);
}

function checkConflicts(config: SnapshotterConfig, source: string): void {
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
