/** The parse-phase tree: 1.8.10's semantics for valid input, and every input we refuse on purpose. */
import test from 'ava';
import { LayerFormatError } from '../../../../snapshotter/core/errors.js';
import { FileType, S_IFCHR, S_IFDIR, S_IFREG } from '../../../../snapshotter/layer/erofs/format.js';
import { LayerTree, type Inode } from '../../../../snapshotter/layer/erofs/tree.js';
import type { TarEntry } from '../../../../snapshotter/layer/tar/entry.js';
import { tarEntry } from '../../../support/erofs-build.js';

function treeOf(...entries: TarEntry[]): LayerTree {
  const tree = new LayerTree();
  for (const e of entries) tree.add(e);
  return tree;
}

function lookup(tree: LayerTree, path: string): Inode {
  let inode = tree.root;
  for (const name of path.split('/')) {
    const d = inode.dir?.children.get(name);
    if (!d?.inode) throw new Error(`${path}: no ${name}`);
    inode = d.inode;
  }
  return inode;
}

const file = (path: string, fields: Partial<TarEntry> = {}) => tarEntry(path, 'file', fields);
const dir = (path: string, fields: Partial<TarEntry> = {}) => tarEntry(path, 'directory', fields);
const link = (path: string, target: string) => tarEntry(path, 'hardlink', { linkTarget: target });
const symlink = (path: string, target: string) => tarEntry(path, 'symlink', { linkTarget: target });

test('the root starts as 0777 owned by root', (t) => {
  const { root } = new LayerTree();
  t.is(root.mode, S_IFDIR | 0o777);
  t.is(root.parent, root);
  t.is(root.nlink, 2);
});

test('implicit parents: 0755 plus the parent group/other write bits, owner of the parent', (t) => {
  const tree = treeOf(dir('p', { mode: 0o750, uid: 7, gid: 8 }), file('p/q/r/f'), file('open/x'));
  t.is(lookup(tree, 'p/q').mode, S_IFDIR | 0o755);
  t.like(lookup(tree, 'p/q/r'), { uid: 7, gid: 8 });
  t.is(lookup(tree, 'open').mode, S_IFDIR | 0o777, 'under the 0777 root');
});

test('a directory listed again keeps its inode and children, its attributes are replaced', (t) => {
  const tree = treeOf(dir('d', { mode: 0o755 }), file('d/keep'), dir('d', { mode: 0o700, uid: 9 }));
  const d = lookup(tree, 'd');
  t.is(d.mode, S_IFDIR | 0o700);
  t.is(d.uid, 9);
  t.truthy(d.dir!.children.get('keep'));
  t.is(d.dir!.dotdots.length, 1);
});

test('the last entry for a path wins; the replaced inode loses a link', (t) => {
  const first = file('f', { size: 0 });
  const tree = new LayerTree();
  tree.add(first);
  const old = lookup(tree, 'f');
  tree.add(symlink('f', 'target'));
  t.is(old.nlink, 0);
  t.is(lookup(tree, 'f').symlink, 'target');
});

test('a directory may become a file once, and a file a directory', (t) => {
  const tree = treeOf(dir('was-dir'), file('was-dir/child'), file('was-file'), file('was-dir'), dir('was-file'), file('was-file/new'));
  t.is(lookup(tree, 'was-dir').mode & S_IFREG, S_IFREG);
  t.truthy(lookup(tree, 'was-file/new'));
  t.is(tree.root.nlink, 1, 'mkfs drops a parent link for the removed directory');
});

test('hard links share the inode and count links', (t) => {
  const tree = treeOf(file('a'), link('b', 'a'), link('c', 'b'));
  t.is(lookup(tree, 'a'), lookup(tree, 'c'));
  t.is(lookup(tree, 'a').nlink, 3);
  t.is(tree.root.dir!.children.get('c')!.type, FileType.Regular);
});

test('a whiteout becomes a 0:0 character device with no permission bits; its directory is marked', (t) => {
  const tree = treeOf(dir('etc'), file('etc/.wh.gone', { mode: 0o644, uid: 3 }));
  const wh = lookup(tree, 'etc/gone');
  t.is(wh.mode, S_IFCHR);
  t.is(wh.rdev, 0);
  t.is(wh.uid, 3);
  t.true(lookup(tree, 'etc').whiteouts);
  t.is(lookup(tree, 'etc').dir!.children.get('gone')!.type, FileType.CharDevice);
});

test('an opaque marker sets trusted.overlay.opaque on its directory, even before the directory entry', (t) => {
  const tree = treeOf(file('o/.wh..wh..opq'), dir('o', { mode: 0o700 }));
  const o = lookup(tree, 'o');
  t.deepEqual(o.xattrs.map((x) => x.name), ['trusted.overlay.opaque']);
  t.deepEqual([...o.xattrs[0]!.value], [0x79]);
  t.false(o.dir!.children.has('.wh..wh..opq'));
  t.is(o.mode, S_IFDIR | 0o700);
});

test('"." and "./" set the root attributes; "./a/./b" is "a/b"', (t) => {
  const tree = treeOf(dir('./', { mode: 0o750, uid: 1000 }), file('./a/./b'));
  t.is(tree.root.mode, S_IFDIR | 0o750);
  t.is(tree.root.uid, 1000);
  t.truthy(lookup(tree, 'a/b'));
});

test('xattrs stay in entry order, and a directory listed twice collects both sets', (t) => {
  const x = (name: string) => ({ name, value: new Uint8Array([1]) });
  const tree = treeOf(dir('d', { xattrs: [x('user.b'), x('user.a')] }), dir('d', { xattrs: [x('user.b')] }));
  t.deepEqual(lookup(tree, 'd').xattrs.map((e) => e.name), ['user.b', 'user.a', 'user.b']);
});

test('a directory listed again after mkfs ran its link count down to 0 is refused (1.8.10 writes a second "." and "..")', (t) => {
  const tree = new LayerTree();
  for (const e of [dir('p'), dir('p/a'), dir('p/b'), file('p/a'), file('p/b')]) tree.add(e);
  const error = t.throws(() => tree.add(dir('p')), { instanceOf: LayerFormatError });
  t.regex(error!.message, /listed again after its subdirectories were replaced.*"p"/);
});

test('only regular files with data keep it', (t) => {
  const tree = new LayerTree();
  t.truthy(tree.add(file('f', { size: 3 })));
  t.is(tree.add(file('.wh.g', { size: 3 })), undefined, 'a whiteout drops its data');
  t.is(tree.add(file('empty')), undefined);
});

// ------------------------------------------------------------ refusals

const refusals: Array<[title: string, entries: TarEntry[], message: RegExp]> = [
  ['a ".." component', [file('a/../b')], /"\.\." component/],
  ['an absolute path', [file('/etc/passwd')], /absolute/],
  ['a component longer than 255 bytes', [file(`d/${'n'.repeat(256)}`)], /component of 256 bytes/],
  ['a NUL byte in a path', [file('a\0b')], /NUL/],
  ['a hard link to a missing entry', [link('l', 'missing')], /does not exist/],
  ['a hard link to itself', [file('a'), link('a', 'a')], /does not exist/],
  ['a hard link to a directory', [dir('d'), link('l', 'd')], /hard link to a directory/],
  ['a hard link to the root', [link('l', '.')], /hard link to a directory/],
  ['an absolute hard link target', [file('a'), link('l', '/a')], /hard link target is absolute/],
  ['a ".." in a hard link target', [file('a'), link('d/l', 'd/../a')], /"\.\." component/],
  ['a path through a symlink', [symlink('s', '/etc'), file('s/passwd')], /through a non-directory/],
  ['a path through a file', [file('f'), file('f/x')], /through a non-directory/],
  ['directory → file → directory', [dir('d'), file('d'), dir('d')], /becomes a directory again/],
  ['directory → hard link → directory', [file('f'), dir('d'), link('d', 'f'), dir('d')], /becomes a directory again/],
  ['a non-directory entry for the root', [file('.')], /root is not a directory/],
  ['an opaque marker at the root', [file('.wh..wh..opq')], /opaque marker at the layer root/],
  ['an opaque marker with data', [file('d/.wh..wh..opq', { size: 1 })], /opaque marker with 1 bytes/],
  ['a whiteout without a name', [file('d/.wh.')], /names no file/],
  ['a whiteout of "."', [file('d/.wh..')], /names no file/],
  ['a hard link replaced by a directory', [file('a/f'), link('b/h', 'a/f'), dir('b/h')], /hard link is replaced/],
  ['a hard link replaced by a whiteout', [file('a/f'), link('b/h', 'a/f'), file('b/.wh.h')], /hard link is replaced/],
  ['a uid over 2^32-1', [file('f', { uid: 2 ** 32 })], /uid 4294967296/],
  ['a negative gid', [file('f', { gid: -1 })], /gid -1/],
  ['mode bits beyond 07777', [file('f', { mode: 0o10000 })], /mode/],
  ['a size no block address reaches', [file('f', { size: 2 ** 52 })], /size .* cannot be stored/],
  ['a device major over 4095', [tarEntry('c', 'char', { devMajor: 4096 })], /cannot be encoded/],
  ['a device minor over 2^20-1', [tarEntry('b', 'block', { devMinor: 2 ** 20 })], /cannot be encoded/],
  ['an xattr value over 64 KiB', [file('f', { xattrs: [{ name: 'user.big', value: new Uint8Array(65536) }] })], /value of 65536 bytes/],
  ['an xattr name over 255 bytes after its prefix', [file('f', { xattrs: [{ name: `user.${'x'.repeat(256)}`, value: new Uint8Array(0) }] })], /longer than 255/],
];

for (const [title, entries, message] of refusals) {
  test(`refuses ${title}`, (t) => {
    const tree = new LayerTree();
    const last = entries[entries.length - 1]!;
    const error = t.throws(() => entries.forEach((e) => tree.add(e)), { instanceOf: LayerFormatError });
    t.regex(error!.message, message);
    t.is(error!.offset, last.offset, 'names the offset of the entry');
    t.is(error!.entry, last.path);
  });
}

test('a hard link replaced by a plain file is fine (1.8.10 gets that right)', (t) => {
  const tree = treeOf(file('a/f'), link('b/h', 'a/f'), file('b/h'));
  t.is(lookup(tree, 'a/f').nlink, 1);
});
