/**
 * Which installed kernel the VM boots, and which of its modules the guest
 * loads. The host's own kernel has no device-mapper, so the VM boots a distro
 * kernel from /boot whose module tree has dm-verity; its modules are found
 * through modules.dep, exactly as modprobe would find them.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * Modules the guest needs, in load order; each one's dependencies from
 * modules.dep are loaded before it. crc32c_generic comes before erofs because
 * libcrc32c only names "crc32c" as a soft dependency, and nothing in the
 * initramfs could answer the kernel's request_module() for it.
 */
export const GUEST_MODULES: readonly string[] = [
  'virtio_pci', // the PCI transport for the 9p shares
  '9pnet_virtio',
  '9p', // the host root and the results share
  'crc32c_generic',
  'erofs',
  'loop',
  'dm_verity',
  'overlay', // writable /etc, /var and /root over the read-only host root; containerd's snapshots
];

export interface GuestKernel {
  version: string;
  /** The bzImage qemu boots with -kernel. */
  image: string;
  /** /lib/modules/<version>. */
  moduleDir: string;
}

export const BOOT_DIR = '/boot';
export const MODULES_ROOT = '/lib/modules';

/**
 * The newest kernel in /boot whose module tree provides every module in
 * GUEST_MODULES (as a loadable module or built in), or the reason none fits.
 */
export function findGuestKernel(bootDir = BOOT_DIR, modulesRoot = MODULES_ROOT): GuestKernel | { reason: string } {
  let images: string[];
  try {
    images = readdirSync(bootDir).filter((name) => name.startsWith('vmlinuz-'));
  } catch (err) {
    return { reason: `cannot list ${bootDir}: ${(err as Error).message}` };
  }
  const versions = images.map((name) => name.slice('vmlinuz-'.length)).sort(compareKernelVersions).reverse();
  const rejected: string[] = [];
  for (const version of versions) {
    const moduleDir = join(modulesRoot, version);
    const missing = missingModules(moduleDir);
    if (missing.length === 0) return { version, image: join(bootDir, `vmlinuz-${version}`), moduleDir };
    rejected.push(`${version} lacks ${missing.join(', ')}`);
  }
  return {
    reason:
      versions.length === 0
        ? `no ${bootDir}/vmlinuz-* (install linux-image-amd64)`
        : `no kernel in ${bootDir} has the modules the VM needs (${rejected.join('; ')}); install linux-image-amd64`,
  };
}

function missingModules(moduleDir: string): string[] {
  if (!existsSync(join(moduleDir, 'modules.dep'))) return [...GUEST_MODULES];
  const { modulesDep, builtin } = readModuleIndex(moduleDir);
  return GUEST_MODULES.filter((name) => !modulesDep.has(name) && !builtin.has(name));
}

export interface ModuleIndex {
  modulesDep: Map<string, { path: string; deps: string[] }>;
  /** Names of modules compiled into the kernel: nothing to load. */
  builtin: Set<string>;
}

export function readModuleIndex(moduleDir: string): ModuleIndex {
  const modulesDep = parseModulesDep(readFileSync(join(moduleDir, 'modules.dep'), 'utf8'));
  const builtinFile = join(moduleDir, 'modules.builtin');
  const builtin = new Set(
    existsSync(builtinFile) ? readFileSync(builtinFile, 'utf8').split('\n').filter(Boolean).map(moduleName) : [],
  );
  return { modulesDep, builtin };
}

/**
 * modules.dep as a map from module name to its file and the files it depends
 * on. Lines look like `kernel/drivers/md/dm-verity.ko: kernel/drivers/md/dm-bufio.ko ...`,
 * paths relative to the module directory.
 */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const modules = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean);
    modules.set(moduleName(path), { path, deps });
  }
  return modules;
}

/**
 * Module files to insmod, dependencies first, each once. Modules listed in
 * `builtin` are skipped (nothing to load); any other unknown name is an error.
 */
export function resolveModuleLoadOrder({ modulesDep, builtin }: ModuleIndex, wanted: readonly string[]): string[] {
  const order: string[] = [];
  const placed = new Set<string>();
  const visit = (name: string, chain: string[]): void => {
    if (placed.has(name) || builtin.has(name)) return;
    if (chain.includes(name)) throw new Error(`module dependency cycle: ${[...chain, name].join(' -> ')}`);
    const entry = modulesDep.get(name);
    if (!entry) throw new Error(`module ${name} is neither in modules.dep nor built in`);
    for (const dep of entry.deps) visit(moduleName(dep), [...chain, name]);
    placed.add(name);
    order.push(entry.path);
  };
  for (const name of wanted) visit(moduleName(name), []);
  return order;
}

/** The name the kernel gives a module file: basename without .ko[.xz|.zst|.gz], `-` as `_`. */
export function moduleName(path: string): string {
  return basename(path.trim()).replace(/\.ko(\.(xz|zst|gz))?$/, '').replaceAll('-', '_');
}

/** Orders kernel release strings like `sort -V`: numeric runs as numbers. */
export function compareKernelVersions(a: string, b: string): number {
  const split = (v: string) => v.split(/(\d+)/).filter(Boolean);
  const pa = split(a);
  const pb = split(b);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    const diff = !Number.isNaN(nx) && !Number.isNaN(ny) ? nx - ny : x < y ? -1 : x > y ? 1 : 0;
    if (diff !== 0) return Math.sign(diff);
  }
  return 0;
}
