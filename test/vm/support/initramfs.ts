/**
 * The VM's initramfs, built from what the host has: Debian's static busybox,
 * our init.sh, and the guest kernel's own modules (with their dependencies
 * from modules.dep). Written uncompressed — the kernel unpacks a plain cpio
 * without running a decompressor under TCG — and cached under the system temp
 * dir, keyed by the kernel version and every input, so test files share one.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { FailedPreconditionError } from '../../../snapshotter/core/errors.js';
import { cachePath, writeCacheFile } from './cache.js';
import { packageRoot } from './package-root.js';
import { writeNewcCpio, type CpioEntry } from './cpio.js';
import { GUEST_MODULES, moduleName, readModuleIndex, resolveModuleLoadOrder, type GuestKernel } from './kernel.js';

export const BUSYBOX = '/bin/busybox';
/** Bump when the layout of the archive changes without any input changing. */
const FORMAT = 'initramfs-v1';

/** init.sh lives in the source tree; compiled code runs from dist*, which tsc does not copy it into. */
export function initScriptPath(): string {
  return join(packageRoot(), 'test', 'vm', 'support', 'init.sh');
}

/** Module files for `kernel`, dependencies first. */
export function guestModuleFiles(kernel: GuestKernel): string[] {
  return resolveModuleLoadOrder(readModuleIndex(kernel.moduleDir), GUEST_MODULES).map((path) => join(kernel.moduleDir, path));
}

/** The path of the (cached) initramfs for `kernel`, building it if its inputs changed. */
export function ensureInitramfs(kernel: GuestKernel): string {
  const init = initScriptPath();
  const modules = guestModuleFiles(kernel);
  const key = createHash('sha256').update(FORMAT).update(`\0${kernel.version}`).update(readFileSync(init));
  for (const file of [BUSYBOX, ...modules]) {
    const st = statSync(file);
    key.update(`\0${file}\0${st.size}\0${st.mtimeMs}`);
  }
  const target = cachePath(`initramfs-${kernel.version}-${key.digest('hex').slice(0, 16)}.cpio`);
  if (!existsSync(target)) writeCacheFile(target, buildInitramfs(init, modules));
  return target;
}

function buildInitramfs(init: string, modules: string[]): Buffer {
  assertStaticExecutable(BUSYBOX);
  const names = modules.map((path) => `${moduleName(path)}.ko`);
  const entries: CpioEntry[] = [
    { type: 'dir', path: 'bin' },
    { type: 'dir', path: 'dev' },
    // The kernel opens /dev/console for init's stdio before init could mount devtmpfs.
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
    { type: 'dir', path: 'proc' },
    { type: 'dir', path: 'newroot' },
    { type: 'dir', path: 'modules' },
    { type: 'file', path: 'bin/busybox', data: readFileSync(BUSYBOX), mode: 0o755 },
    { type: 'file', path: 'init', data: readFileSync(init), mode: 0o755 },
    { type: 'file', path: 'modules/order', data: Buffer.from(names.map((n) => `${n}\n`).join('')) },
    ...modules.map((path, i): CpioEntry => ({ type: 'file', path: `modules/${names[i]}`, data: readModule(path) })),
  ];
  return writeNewcCpio(entries);
}

/**
 * A module file's ELF bytes. Distros ship .ko, .ko.xz or .ko.zst; busybox's
 * insmod and kernels without in-kernel decompression need the plain object.
 */
function readModule(path: string): Buffer {
  const name = basename(path);
  if (name.endsWith('.ko')) return readFileSync(path);
  if (name.endsWith('.ko.gz')) return gunzipSync(readFileSync(path));
  const tool = name.endsWith('.ko.xz') ? 'xz' : name.endsWith('.ko.zst') ? 'zstd' : undefined;
  if (!tool) throw new FailedPreconditionError(`unknown module file type: ${path}`);
  try {
    return execFileSync(tool, ['-dc', '--', path], { maxBuffer: 256 << 20 });
  } catch (err) {
    throw new FailedPreconditionError(`cannot decompress ${path} with ${tool}`, {
      cause: err,
      hint: `install ${tool === 'xz' ? 'xz-utils' : 'zstd'}`,
    });
  }
}

/** A dynamically linked busybox would fail in the initramfs, where there is no loader. */
export function assertStaticExecutable(path: string): void {
  if (!isStaticElf(path)) {
    throw new FailedPreconditionError(`${path} is not a static executable`, { hint: 'apt-get install busybox-static' });
  }
}

/** True for a 64-bit little-endian ELF executable with no PT_INTERP program header. */
export function isStaticElf(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const header = Buffer.alloc(64);
    if (readSync(fd, header, 0, 64, 0) < 64) return false;
    // e_ident: magic, ELFCLASS64 (2), ELFDATA2LSB (1)
    if (header.readUInt32BE(0) !== 0x7f454c46 || header[4] !== 2 || header[5] !== 1) return false;
    const phoff = Number(header.readBigUInt64LE(32));
    const phentsize = header.readUInt16LE(54);
    const phnum = header.readUInt16LE(56);
    const table = Buffer.alloc(phentsize * phnum);
    readSync(fd, table, 0, table.length, phoff);
    const PT_INTERP = 3;
    for (let i = 0; i < phnum; i++) if (table.readUInt32LE(i * phentsize) === PT_INTERP) return false;
    return true;
  } finally {
    closeSync(fd);
  }
}
