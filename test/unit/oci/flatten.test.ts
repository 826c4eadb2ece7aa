import test from 'ava';
import { gzipSync } from 'node:zlib';
import type { TarEntry, TarSink } from '../../../snapshotter/layer/tar/entry.js';
import { parseTar } from '../../../snapshotter/layer/tar/reader.js';
import { flattenLayers, goClean } from '../../../snapshotter/oci/flatten.js';
import { makeTar, type FileSpec } from '../../support/oci-image.js';

async function flatten(layers: Buffer[]): Promise<string[]> {
  const rows: string[] = [];
  let current: { entry: TarEntry; data: string } | undefined;
  const flush = () => {
    if (current) rows.push(`${current.entry.path} ${current.entry.type}${current.entry.linkTarget ? ` -> ${current.entry.linkTarget}` : ''}${current.data ? ` "${current.data}"` : ''}`);
  };
  const sink: TarSink = {
    entry: (entry) => { flush(); current = { entry, data: '' }; },
    data: (chunk) => { current!.data += Buffer.from(chunk).toString(); },
    end: flush,
  };
  await parseTar(flattenLayers(layers.map((l) => async function* () { yield l; })), sink);
  return rows;
}

const base: FileSpec[] = [
  { path: './' },
  { path: './etc/' },
  { path: './etc/passwd', data: 'root' },
  { path: './etc/gone', data: 'x' },
  { path: './opq/' },
  { path: './opq/old', data: 'old' },
  { path: './dir2file/' },
  { path: './dir2file/inner', data: 'inner' },
  { path: './keepdir/' },
  { path: './keepdir/a', data: 'a' },
  { path: './bin/' },
  { path: './bin/busybox', data: 'bb' },
];

const top: FileSpec[] = [
  { path: 'etc/.wh.gone', data: '' },
  { path: 'etc/passwd', data: 'root2' },
  { path: 'opq/' },
  { path: 'opq/.wh..wh..opq', data: '' },
  { path: 'opq/new', data: 'new' },
  { path: 'dir2file', data: 'now a file' },
  { path: 'keepdir/b', data: 'b' },
  { path: 'bin/sh', type: 'hardlink', linkTarget: './bin/busybox' },
];

test('flattened as go-containerregistry mutate.Extract does it (hand-derived expectation)', async (t) => {
  t.deepEqual(await flatten([gzipSync(makeTar(base)), makeTar(top)]), [
    // The top layer first, in archive order; whiteouts are not written.
    'etc/passwd file "root2"',
    'opq directory',
    'opq/new file "new"',
    'dir2file file "now a file"',
    'keepdir/b file "b"',
    'bin/sh hardlink -> ./bin/busybox', // link targets are not cleaned
    // Then what the base layer still contributes; names cleaned.
    '. directory',
    'etc directory',
    // etc/passwd (replaced), etc/gone (whited out): dropped.
    'opq/old file "old"', // opaque markers are not honoured by go-containerregistry
    // dir2file/ and dir2file/inner: hidden by the file that replaced the directory.
    'keepdir directory',
    'keepdir/a file "a"',
    'bin directory',
    'bin/busybox file "bb"',
  ]);
});

test('a whited-out directory hides its whole subtree below', async (t) => {
  const lower = makeTar([{ path: 'a/' }, { path: 'a/b/' }, { path: 'a/b/c', data: 'c' }, { path: 'a2', data: 'keep' }]);
  const upper = makeTar([{ path: '.wh.a', data: '' }]);
  t.deepEqual(await flatten([lower, upper]), ['a2 file "keep"']);
});

test('a single layer passes through with cleaned names only', async (t) => {
  t.deepEqual(await flatten([makeTar([{ path: './x/' }, { path: './x/y', data: 'z' }])]), ['x directory', 'x/y file "z"']);
});

test('goClean matches Go path.Clean', (t) => {
  const cases: [string, string][] = [['', '.'], ['./', '.'], ['./a/', 'a'], ['a//b/./c/..', 'a/b'], ['/', '/'], ['//a//', '/a'], ['../x', '../x'], ['a/../..', '..']];
  for (const [input, expected] of cases) t.is(goClean(input), expected, input);
});
