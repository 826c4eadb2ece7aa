/**
 * An image's root filesystem as overlayfs merges it, read from its layers'
 * own mounts (top layer first) without mounting an overlay: a name is
 * looked up in the layers where its parent directory takes part in the
 * merge, top down; the first layer that has it decides what it is. A
 * whiteout (a character device 0:0, as EROFS layers in `--aufs` form and
 * upper dirs hold them) hides the name below it; a directory merges with
 * the directories of the same name below it until one is opaque
 * (`trusted.overlay.opaque` = `y`) or a layer has a non-directory there.
 *
 * The file system is read through `LayerFs`, so the merge rules are tested
 * over literal trees; `hostLayerFs` is the real one.
 */
import type { Stats } from 'node:fs';
import { lstat, readlink } from 'node:fs/promises';
import type { ByteString, TarXattr } from '../../layer/tar/entry.js';
import { OVERLAY_OPAQUE_XATTR } from '../layers/dir-source.js';
import type { TreeNode, TreePath, TreeView } from './resolve.js';

export interface LayerFileStat {
  kind: 'directory' | 'file' | 'symlink' | 'whiteout' | 'other';
  /** Permission bits, setuid/setgid/sticky included. */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch. */
  mtime: number;
}

/** What the merge reads from a layer; paths are raw bytes. */
export interface LayerFs {
  /** undefined when there is nothing at `path` (ENOENT, ENOTDIR). */
  lstat(path: Buffer): Promise<LayerFileStat | undefined>;
  readlink(path: Buffer): Promise<ByteString>;
  xattrs(path: Buffer): Promise<TarXattr[]>;
}

/** A name of the merged tree with the attributes its topmost layer gives it. */
export interface MergedNode extends TreeNode {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  /** A directory's xattrs (overlay's own excepted): what the merged directory shows. */
  xattrs: TarXattr[];
}

interface Entry {
  node: MergedNode;
  /** The layers (indexes, top first) whose directory at this path takes part in the merge. */
  layers: number[];
}

export class MergedTree implements TreeView<MergedNode> {
  private readonly cache = new Map<string, Promise<Entry | undefined>>();

  /** `layers`: the directories the layers are mounted at, top layer first. */
  constructor(
    private readonly layers: readonly string[],
    private readonly fs: LayerFs,
  ) {}

  async lookup(path: TreePath): Promise<MergedNode | undefined> {
    return (await this.entry(path))?.node;
  }

  private entry(path: TreePath): Promise<Entry | undefined> {
    const key = path.join('/');
    let entry = this.cache.get(key);
    if (!entry) {
      entry = path.length === 0 ? this.root() : this.child(path);
      this.cache.set(key, entry);
    }
    return entry;
  }

  /** The root merges every layer; its attributes are the top layer's. */
  private async root(): Promise<Entry | undefined> {
    if (this.layers.length === 0) return undefined;
    const top = this.at(0, []);
    const st = await this.fs.lstat(top);
    if (st?.kind !== 'directory') return undefined;
    return { node: await this.node(st, top), layers: this.layers.map((_, i) => i) };
  }

  private async child(path: TreePath): Promise<Entry | undefined> {
    const parent = await this.entry(path.slice(0, -1));
    if (parent?.node.type !== 'directory') return undefined;
    let found: Entry | undefined;
    for (const layer of parent.layers) {
      const absolute = this.at(layer, path);
      const st = await this.fs.lstat(absolute);
      if (st === undefined) continue;
      if (st.kind === 'whiteout') break;
      if (found === undefined) {
        found = { node: await this.node(st, absolute), layers: [] };
        if (st.kind !== 'directory') break;
      } else if (st.kind !== 'directory') {
        // A non-directory below a directory ends the merge.
        break;
      }
      found.layers.push(layer);
      if (await this.opaque(absolute)) break;
    }
    return found;
  }

  private async node(st: LayerFileStat, absolute: Buffer): Promise<MergedNode> {
    const type = st.kind === 'whiteout' ? 'other' : st.kind;
    const node: MergedNode = { type, mode: st.mode, uid: st.uid, gid: st.gid, mtime: st.mtime, xattrs: [] };
    if (type === 'symlink') node.target = await this.fs.readlink(absolute);
    if (type === 'directory') node.xattrs = (await this.fs.xattrs(absolute)).filter((x) => !x.name.startsWith('trusted.overlay.'));
    return node;
  }

  private async opaque(absolute: Buffer): Promise<boolean> {
    const xattrs = await this.fs.xattrs(absolute);
    return xattrs.some((x) => x.name === OVERLAY_OPAQUE_XATTR && Buffer.from(x.value).toString('latin1') === 'y');
  }

  private at(layer: number, path: TreePath): Buffer {
    return Buffer.concat([Buffer.from(this.layers[layer]!), ...path.map((p) => Buffer.from(`/${p}`, 'latin1'))]);
  }
}

/** LayerFs on the host's file system; `xattrs` reads them through the native addon. */
export function hostLayerFs(xattrs: (path: Buffer) => Promise<TarXattr[]>): LayerFs {
  return {
    async lstat(path) {
      let st: Stats;
      try {
        st = await lstat(path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
        throw err;
      }
      return { kind: kindOf(st), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: Math.floor(st.mtimeMs / 1000) };
    },
    async readlink(path) {
      return (await readlink(path, { encoding: 'buffer' })).toString('latin1');
    },
    xattrs,
  };
}

function kindOf(st: Stats): LayerFileStat['kind'] {
  if (st.isDirectory()) return 'directory';
  if (st.isFile()) return 'file';
  if (st.isSymbolicLink()) return 'symlink';
  // overlayfs's whiteout: a character device with device number 0:0.
  if (st.isCharacterDevice() && st.rdev === 0) return 'whiteout';
  return 'other';
}
