/**
 * The mountpoints layer: a small EROFS image holding the directories and
 * empty files runc mounts onto (`/proc`, `/dev`, `/etc/resolv.conf`, …, from
 * configuration). It sits above the image layers of a read-only root
 * filesystem, so runc never has to create a mount target in it, and it is
 * the second lower dir overlay needs when there is no upper dir.
 *
 * It is built by the same ErofsBuilder as every layer, fed TarEntry records,
 * so the same configuration always gives the same bytes. It is kept as a
 * committed snapshot named by its sha256 in MOUNTPOINTS_NAMESPACE, which no
 * containerd client can name: so it is mounted once, reference-counted by
 * the containers above it, restored after a restart and removed once unused,
 * like every other layer.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../core/log.js';
import { ErofsBuilder } from '../../layer/erofs/writer.js';
import { writeImageFiles } from '../../layer/image-files.js';
import { DataSpill } from '../../layer/spill.js';
import type { TarEntry } from '../../layer/tar/entry.js';
import { LAYER_HASH_TREE, LAYER_IMAGE } from '../layers/store.js';
import { NEW_PREFIX, type RootLayout } from '../layout.js';
import type { MetadataStore } from '../metadata/store.js';

/** A `/` makes it an invalid containerd namespace name: no request can reach these snapshots. */
export const MOUNTPOINTS_NAMESPACE = 'containerd-integrity/mountpoints';

export interface MountpointsSpec {
  /** Absolute paths of directories. */
  readonly dirs: readonly string[];
  /** Absolute paths of empty regular files. */
  readonly files: readonly string[];
}

const DIR_MODE = 0o755;
const FILE_MODE = 0o644;

/**
 * The layer's records: the root, every directory on the way to a listed path
 * and the listed paths themselves, parents first, by path. Owned by root.
 */
export function mountpointEntries(spec: MountpointsSpec): TarEntry[] {
  const dirs = new Set<string>(['.']);
  const addParents = (path: string) => {
    const parts = relativeParts(path);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  };
  for (const dir of spec.dirs) {
    addParents(dir);
    if (relativeParts(dir).length > 0) dirs.add(relativeParts(dir).join('/'));
  }
  for (const file of spec.files) addParents(file);
  const entries = [
    ...[...dirs].map((path) => record(path, 'directory', DIR_MODE)),
    ...spec.files.map((file) => record(relativeParts(file).join('/'), 'file', FILE_MODE)),
  ];
  return entries.sort((a, b) => (a.path === '.' ? -1 : b.path === '.' ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Builds the layer into `layerDir` (layer.erofs + layer.verity). */
export async function buildMountpointsLayer(spec: MountpointsSpec, layerDir: string) {
  const spill = DataSpill.create(layerDir);
  try {
    const builder = new ErofsBuilder({ spill });
    const entries = mountpointEntries(spec);
    for (const entry of entries) builder.entry(entry);
    builder.end();
    const files = await writeImageFiles(builder.finish(), { output: join(layerDir, LAYER_IMAGE), hashFile: join(layerDir, LAYER_HASH_TREE) });
    return { ...files, inodes: entries.length };
  } finally {
    spill.close();
  }
}

export interface InstallOptions {
  store: MetadataStore;
  layout: RootLayout;
  spec: MountpointsSpec;
  logger: Logger;
}

/** Makes sure the mountpoints layer of `spec` is a committed snapshot; returns its id and name. */
export async function installMountpointsLayer(options: InstallOptions): Promise<{ id: number; name: string }> {
  const { store, layout, logger } = options;
  const temp = await mkdtemp(join(layout.snapshots, NEW_PREFIX));
  let id: number;
  let name: string;
  try {
    const built = await buildMountpointsLayer(options.spec, temp);
    name = `sha256:${built.sha256}`;
    const known = store.walk(MOUNTPOINTS_NAMESPACE, []).find((s) => s.name === name);
    if (known) {
      id = store.getInfo(MOUNTPOINTS_NAMESPACE, name).id;
    } else {
      const layer = { rootHash: built.rootHash, usage: { size: built.bytes, inodes: built.inodes } };
      id = store.transaction(() => {
        const s = store.insertCommitted(MOUNTPOINTS_NAMESPACE, name, '', layer, {});
        renameSync(temp, layout.snapshot(s.id));
        return s.id;
      });
      logger.info({ layer: id, name, dirs: options.spec.dirs.length, files: options.spec.files.length }, 'mountpoints layer built');
    }
  } finally {
    await rm(temp, { recursive: true, force: true });
  }
  return { id, name };
}

/**
 * Removes the mountpoints layers other than `keep` (of an earlier
 * configuration) that no container uses any more; `remove` is the
 * snapshotter's Remove, which refuses while one does.
 */
export async function retireMountpointsLayers(
  store: MetadataStore,
  keep: string | undefined,
  remove: (ns: string, key: string) => Promise<void>,
  logger: Logger,
): Promise<void> {
  for (const old of store.walk(MOUNTPOINTS_NAMESPACE, [])) {
    if (old.name === keep) continue;
    await remove(MOUNTPOINTS_NAMESPACE, old.name).catch((err: unknown) => {
      logger.debug({ name: old.name, err }, 'an earlier mountpoints layer is still in use');
    });
  }
}

function relativeParts(path: string): string[] {
  return path.split('/').filter((p) => p !== '');
}

function record(path: string, type: 'directory' | 'file', mode: number): TarEntry {
  return { path, type, mode, uid: 0, gid: 0, mtime: 0, size: 0, linkTarget: undefined, devMajor: 0, devMinor: 0, xattrs: [], offset: 0 };
}
