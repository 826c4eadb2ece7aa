/**
 * Layers that change what is below them in every way a layer can — a
 * whiteout, an opaque directory, a directory replaced by a file, a deleted
 * directory made again, links, an xattr — and the merged tree a container of
 * them must see. containerd's overlayfs snapshotter shows that tree
 * (harness.test.ts), so a snapshotter that shows another one is wrong.
 */
import type { ExecutionContext } from 'ava';
import { opaqueEntry, whiteoutEntry, type FileSpec } from './oci-image.js';

/** Three layers to put over busybox. */
export const LAYER_CHANGES: FileSpec[][] = [
  [
    { path: 'data/' },
    { path: 'data/keep', data: 'kept\n' },
    { path: 'data/gone', data: 'deleted by the layer above\n' },
    { path: 'data/old/' },
    { path: 'data/old/hidden', data: 'hidden by the opaque marker above\n' },
    { path: 'data/link', type: 'symlink', linkTarget: 'keep' },
    { path: 'data/hard', type: 'hardlink', linkTarget: 'data/keep' },
    { path: 'data/attr', data: 'x', xattrs: { 'user.integrity.test': 'xattr value' } },
    { path: 'data/exec', data: '#!/bin/sh\n', mode: 0o755 },
    { path: 'data/tree/' },
    { path: 'data/tree/sub/' },
    { path: 'data/tree/sub/file', data: 'below a directory that becomes a file\n' },
    { path: 'data/wd/' },
    { path: 'data/wd/child', data: 'deleted with its directory\n' },
  ],
  [
    whiteoutEntry('data/gone'),
    { path: 'data/old/' },
    opaqueEntry('data/old'),
    { path: 'data/old/new', data: 'new\n' },
    { path: 'data/tree', data: 'tree is a file now\n' },
    whiteoutEntry('data/wd'),
  ],
  // Parent directories listed, as image builders write them: a directory a
  // layer creates only implicitly gets mkfs.erofs's mode, not containerd's 0755
  // (docs/snapshotter.md, "Layer semantics").
  [
    { path: 'data/' },
    { path: 'data/gone', data: 'back again\n' },
    { path: 'data/wd/' },
  ],
];

/** What LIST_MERGED_TREE prints in a container of the image: the merged tree, one line per path. */
export const MERGED_TREE = [
  '/data dir 755',
  '/data/attr file 644 1 x',
  '/data/exec file 755 1 #!/bin/sh',
  '/data/gone file 644 1 back again',
  '/data/hard file 644 2 kept',
  '/data/keep file 644 2 kept',
  '/data/link symlink keep',
  '/data/old dir 755',
  '/data/old/new file 644 1 new',
  '/data/tree file 644 1 tree is a file now',
  '/data/wd dir 755',
];
/** A shell script for busybox that lists /data (type, mode, links, content), then the inodes of the hard link pair. */
export const LIST_MERGED_TREE = [
  'find /data | sort | while read p; do',
  '  if [ -L "$p" ]; then echo "$p symlink $(readlink "$p")";',
  '  elif [ -d "$p" ]; then echo "$p dir $(stat -c %a "$p")";',
  '  else echo "$p file $(stat -c \'%a %h\' "$p") $(cat "$p")"; fi',
  'done',
  'stat -c %i /data/keep /data/hard',
].join('\n');

/** Checks what LIST_MERGED_TREE printed: the merged tree, and the hard link pair as one inode. */
export function assertMergedTree(t: ExecutionContext, stdout: string): void {
  const lines = stdout.trimEnd().split('\n');
  t.deepEqual(lines.slice(0, -2), MERGED_TREE);
  const [keep, hard] = lines.slice(-2);
  t.is(keep, hard, 'the hard link is one inode');
}
