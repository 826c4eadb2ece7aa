/**
 * The mountpoints layer of an image: a small EROFS image holding the
 * directories and empty files runc mounts onto (`/proc`, `/dev`,
 * `/etc/resolv.conf`, …, from configuration) that the image itself lacks. It
 * sits above the image layers of a read-only root filesystem, so runc never
 * has to create a mount target in it, and it is the second lower dir overlay
 * needs when there is no upper dir.
 *
 * Being on top, it must not change what the image shows. So each configured
 * path is first resolved through the image's merged tree the way runc
 * resolves a mount destination (resolve.ts): with Debian's `/var/run -> /run`
 * the target `/var/run/secrets/…` becomes `/run/secrets/…`, and the layer
 * holds that, never a directory `/var/run` that would hide the symlink. Only
 * what is missing is added; a target the image has needs nothing, and a path
 * through a file of the image is left out (logged: runc cannot mount there
 * either). Directories of the image that the layer must hold as parents of
 * what it adds carry the image's own mode, owner, time and xattrs, because
 * overlay shows a merged directory with the attributes of its topmost layer.
 *
 * Built by the same ErofsBuilder as every layer, fed TarEntry records.
 */
import { join } from 'node:path';
import { ErofsBuilder } from '../../layer/erofs/writer.js';
import { writeImageFiles } from '../../layer/image-files.js';
import { DataSpill } from '../../layer/spill.js';
import type { ByteString, TarEntry } from '../../layer/tar/entry.js';
import { LAYER_HASH_TREE, LAYER_IMAGE } from '../layers/store.js';
import type { MergedNode } from './merged-tree.js';
import { resolveInRoot, type TreeView } from './resolve.js';

/** A `/` makes it an invalid containerd namespace name: no request can reach these snapshots. */
export const MOUNTPOINTS_NAMESPACE = 'containerd-integrity/mountpoints';

export interface MountpointsSpec {
  /** Absolute paths of directories. */
  readonly dirs: readonly string[];
  /** Absolute paths of empty regular files. */
  readonly files: readonly string[];
}

export interface MountpointsPlan {
  /** The layer's records: the root first, then by path. */
  entries: TarEntry[];
  /** Configured paths that need nothing or cannot be added, and why (for the log). */
  notes: { path: string; resolved: string; note: string }[];
}

const DIR_MODE = 0o755;
const FILE_MODE = 0o644;

/** What the mountpoints layer over `image` (the merged tree of its layers) must hold for `spec`. */
export async function planMountpoints(spec: MountpointsSpec, image: TreeView<MergedNode>): Promise<MountpointsPlan> {
  const root = await image.lookup([]);
  const records = new Map<ByteString, TarEntry>([['.', root ? copyOf('.', root) : record('.', 'directory', DIR_MODE)]]);
  const notes: MountpointsPlan['notes'] = [];
  const targets = [
    ...spec.dirs.map((path) => ({ path, type: 'directory' as const })),
    ...spec.files.map((path) => ({ path, type: 'file' as const })),
  ];
  for (const { path, type } of targets) {
    let parts: ByteString[];
    try {
      parts = await resolveInRoot(Buffer.from(path).toString('latin1'), image);
    } catch (err) {
      notes.push({ path, resolved: '', note: (err as Error).message });
      continue;
    }
    const resolved = `/${Buffer.from(parts.join('/'), 'latin1').toString()}`;
    const planned = await planPath(parts, type, image, records);
    if (typeof planned === 'string') notes.push({ path, resolved, note: planned });
    else for (const entry of planned) records.set(entry.path, entry);
  }
  const entries = [...records.values()].sort((a, b) => (a.path === '.' ? -1 : b.path === '.' ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return { entries, notes };
}

/**
 * The records one resolved target needs: its missing components (parents as
 * directories, the last one as `type`) and copies of the image's directories
 * above them. A string says why nothing is added.
 */
async function planPath(
  parts: readonly ByteString[],
  type: 'directory' | 'file',
  image: TreeView<MergedNode>,
  records: ReadonlyMap<ByteString, TarEntry>,
): Promise<TarEntry[] | string> {
  if (parts.length === 0) return 'the root itself';
  const add: TarEntry[] = [];
  for (let i = 1; i <= parts.length; i++) {
    const path = parts.slice(0, i).join('/');
    const last = i === parts.length;
    const planned = records.get(path);
    const node = planned ? undefined : await image.lookup(parts.slice(0, i));
    const kind = planned?.type ?? node?.type;
    if (kind === undefined) {
      add.push(record(path, last ? type : 'directory', last && type === 'file' ? FILE_MODE : DIR_MODE));
      continue;
    }
    if (last) return planned ? add : node!.type === type ? 'the image has it' : `the image has it as a ${node!.type}`;
    if (kind !== 'directory') return `/${Buffer.from(path, 'latin1').toString()} is a ${kind} in the image`;
    if (node) add.push(copyOf(path, node));
  }
  return add;
}

/** Builds the layer into `layerDir` (layer.erofs + layer.verity). */
export async function buildMountpointsLayer(entries: readonly TarEntry[], layerDir: string) {
  const spill = DataSpill.create(layerDir);
  try {
    const builder = new ErofsBuilder({ spill });
    for (const entry of entries) builder.entry(entry);
    builder.end();
    const files = await writeImageFiles(builder.finish(), { output: join(layerDir, LAYER_IMAGE), hashFile: join(layerDir, LAYER_HASH_TREE) });
    return { ...files, inodes: entries.length };
  } finally {
    spill.close();
  }
}

/** A directory of the image, as the layer must repeat it. */
function copyOf(path: ByteString, node: MergedNode): TarEntry {
  return { ...record(path, 'directory', node.mode), uid: node.uid, gid: node.gid, mtime: node.mtime, xattrs: node.xattrs };
}

function record(path: ByteString, type: 'directory' | 'file', mode: number): TarEntry {
  return { path, type, mode, uid: 0, gid: 0, mtime: 0, size: 0, linkTarget: undefined, devMajor: 0, devMinor: 0, xattrs: [], offset: 0 };
}
