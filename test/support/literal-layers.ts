/**
 * Image layers written as literals, for the rules that read them through
 * `LayerFs` (service/rootfs/merged-tree.ts): each layer is a map from path
 * to what is there, as an EROFS layer mount shows it — directories,
 * files, symlinks, overlay whiteouts (`{ whiteout: true }`) and opaque
 * directories (`{ dir: true, opaque: true }`). Parent directories are
 * implied.
 *
 *   const tree = literalTree([{ 'var/run': { link: '/run' } }, { run: { dir: true } }]);  // top layer first
 */
import { MergedTree, type LayerFileStat, type LayerFs } from '../../snapshotter/service/rootfs/merged-tree.js';

export type LiteralNode =
  | { dir: true; opaque?: boolean; mode?: number; uid?: number; xattrs?: Record<string, string> }
  | { file: true }
  | { link: string }
  | { whiteout: true };

export type LiteralLayer = Record<string, LiteralNode>;

/** The merged tree of `layers`, top layer first; they are "mounted" at `/layers/<index>`. */
export function literalTree(layers: readonly LiteralLayer[]): MergedTree {
  return new MergedTree(layers.map((_, i) => `/layers/${i}`), literalLayerFs(layers));
}

export function literalLayerFs(layers: readonly LiteralLayer[]): LayerFs {
  const find = (path: Buffer): LiteralNode | undefined => {
    const m = /^\/layers\/(\d+)(?:\/(.*))?$/.exec(path.toString('latin1'));
    const layer = layers[Number(m?.[1])];
    if (!m || !layer) return undefined;
    const rel = m[2] ?? '';
    if (rel === '') return { dir: true };
    if (layer[rel]) return layer[rel];
    // A parent of a listed path is an implied directory.
    return Object.keys(layer).some((p) => p.startsWith(`${rel}/`)) ? { dir: true } : undefined;
  };
  return {
    async lstat(path) {
      const node = find(path);
      if (!node) return undefined;
      const base: LayerFileStat = { kind: 'other', mode: 0o755, uid: 0, gid: 0, mtime: 1_700_000_000 };
      if ('dir' in node) return { ...base, kind: 'directory', mode: node.mode ?? 0o755, uid: node.uid ?? 0 };
      if ('file' in node) return { ...base, kind: 'file', mode: 0o644 };
      if ('link' in node) return { ...base, kind: 'symlink', mode: 0o777 };
      return { ...base, kind: 'whiteout', mode: 0 };
    },
    async readlink(path) {
      const node = find(path);
      if (!node || !('link' in node)) throw Object.assign(new Error(`not a symlink: ${path.toString()}`), { code: 'EINVAL' });
      return node.link;
    },
    async xattrs(path) {
      const node = find(path);
      if (!node || !('dir' in node)) return [];
      const xattrs = Object.entries(node.xattrs ?? {}).map(([name, value]) => ({ name, value: Buffer.from(value) }));
      return node.opaque ? [...xattrs, { name: 'trusted.overlay.opaque', value: Buffer.from('y') }] : xattrs;
    },
  };
}
