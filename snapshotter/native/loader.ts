/**
 * The one place that loads the native addon. It is loaded on first use, never
 * on import, so the pure pipeline (layer/, oci/, signature/) runs on machines
 * that never built it. When loading fails the error says why and what to do.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FailedPreconditionError } from '../core/errors.js';

/** A target as DM_TABLE_LOAD takes it and DM_TABLE_STATUS returns it (sectors of 512 bytes). */
export interface RawDmTarget {
  start: number;
  length: number;
  type: string;
  params: string;
}

export interface RawDmDevice {
  major: number;
  minor: number;
  dev: bigint;
}

export interface RawDmInfo extends RawDmDevice {
  name: string;
  uuid: string;
  openCount: number;
  flags: number;
  eventNr: number;
  targetCount: number;
}

export interface RawLoopStatus {
  number: number;
  backingDevice: bigint;
  backingInode: bigint;
  offset: bigint;
  sizeLimit: bigint;
  flags: number;
  fileName: string;
}

/**
 * The addon's exports: one system call or ioctl each, flags as the kernel's
 * numbers. Failures reject with an Error carrying `code` (errno name),
 * `errno`, `syscall`, `path` and `description`; wrong argument types throw a
 * TypeError. Only the facade modules next to this file call these.
 */
export interface NativeBinding {
  loopGetFree(): Promise<number>;
  /** Resolves to the loop device's open descriptor; see loop.ts for why it stays open. */
  loopConfigure(device: string, file: string, loFlags: number): Promise<number>;
  loopSetFd(device: string, file: string, loFlags: number): Promise<number>;
  loopClearFd(device: string): Promise<void>;
  loopGetStatus(device: string): Promise<RawLoopStatus>;
  mount(source: string, target: string, fstype: string, flags: number, data: string | null): Promise<void>;
  umount2(target: string, flags: number): Promise<void>;
  dmVersion(): Promise<[number, number, number]>;
  dmListDevices(): Promise<(RawDmDevice & { name: string })[]>;
  dmDevCreate(name: string, uuid: string, flags: number): Promise<RawDmInfo>;
  dmTableLoad(name: string, targets: RawDmTarget[], flags: number): Promise<RawDmInfo>;
  dmTableStatus(name: string, flags: number): Promise<{ info: RawDmInfo; targets: RawDmTarget[] }>;
  dmDevSuspend(name: string, flags: number): Promise<RawDmInfo>;
  dmDevRemove(name: string, flags: number): Promise<RawDmInfo>;
  dmDevStatus(name: string, flags: number): Promise<RawDmInfo>;
  /** The kernel's NUL-terminated name list. */
  llistxattr(path: string | Buffer): Promise<Buffer>;
  lgetxattr(path: string | Buffer, name: Buffer): Promise<Buffer>;
}

const EXPORTS: readonly (keyof NativeBinding)[] = [
  'loopGetFree', 'loopConfigure', 'loopSetFd', 'loopClearFd', 'loopGetStatus',
  'mount', 'umount2',
  'dmVersion', 'dmListDevices', 'dmDevCreate', 'dmTableLoad', 'dmTableStatus', 'dmDevSuspend', 'dmDevRemove', 'dmDevStatus',
  'llistxattr', 'lgetxattr',
];

const REBUILD = 'run `npm run build:native` in the source tree, or `npm rebuild containerd-integrity` where it is installed (needs python3, make and a C++17 compiler)';

let loaded: NativeBinding | undefined;

/** The addon, loaded once. Throws FailedPreconditionError saying why it cannot be used. */
export function loadNative(): NativeBinding {
  loaded ??= loadNativeFrom(addonPath());
  return loaded;
}

/** Where the build puts the addon: build/Release under the package root. */
export function addonPath(): string {
  return join(packageRoot(), 'build', 'Release', 'integrity_native.node');
}

/** Loads the addon at `path`, or explains why not. Exposed so tests can point it at broken files. */
export function loadNativeFrom(path: string): NativeBinding {
  if (process.platform !== 'linux') {
    throw new FailedPreconditionError(`the native addon works only on Linux, not ${process.platform}`, {
      hint: 'run the snapshotter, CRI proxy and audit daemons on the Linux node itself',
    });
  }
  if (!existsSync(path)) {
    throw new FailedPreconditionError(`the native addon is not built: ${path} does not exist`, { hint: REBUILD });
  }
  let binding: Partial<NativeBinding>;
  try {
    binding = createRequire(import.meta.url)(path) as Partial<NativeBinding>;
  } catch (err) {
    throw explainLoadFailure(path, err);
  }
  const missing = EXPORTS.filter((name) => typeof binding[name] !== 'function');
  if (missing.length > 0) {
    throw new FailedPreconditionError(`the native addon at ${path} is out of date: it lacks ${missing.join(', ')}`, { hint: REBUILD });
  }
  return binding as NativeBinding;
}

function explainLoadFailure(path: string, err: unknown): FailedPreconditionError {
  const reason = err instanceof Error ? err.message : String(err);
  const why =
    /NODE_MODULE_VERSION|different Node\.js version|napi_|node_api/i.test(reason)
      ? `it was built for another Node.js (this is ${process.version})`
      : /invalid ELF header|wrong ELF class|ELFCLASS|file too short|not an ELF/i.test(reason)
        ? `it is not a shared library for this machine (${process.arch})`
        : /GLIBC_|GLIBCXX_|CXXABI_/.test(reason)
          ? 'it was built against a newer C or C++ library than this system has'
          : 'the dynamic loader refused it';
  return new FailedPreconditionError(`cannot load the native addon ${path}: ${why}: ${reason}`, {
    hint: `rebuild it on this machine: ${REBUILD}`,
    cause: err,
  });
}

/** The nearest directory above this module with a package.json: the same from snapshotter/ and dist/. */
function packageRoot(): string {
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return start;
  }
}
