import test from 'ava';
import { DirectoryListing } from '../../../../snapshotter/layer/erofs/dir.js';
import { FileType } from '../../../../snapshotter/layer/erofs/format.js';
import { LayerTree } from '../../../../snapshotter/layer/erofs/tree.js';
import { tarEntry } from '../../../support/erofs-build.js';

function listingOf(names: string[]): DirectoryListing {
  const tree = new LayerTree();
  for (const name of names) tree.add(tarEntry(name, 'file'));
  return new DirectoryListing(tree.root);
}

test('entries sort as bytes, "." and ".." included', (t) => {
  const names = listingOf(['a.txt', 'B-upper', 'a', ' space', 'a-dash', 'a.', '\xff']).names;
  t.deepEqual(names, [' space', '.', '..', 'B-upper', 'a', 'a-dash', 'a.', 'a.txt', '\xff']);
});

test('dirents fill blocks without splitting an entry; the size counts full blocks', (t) => {
  // 20-byte names: 32 bytes a dirent; '.' and '..' take 13 + 14.
  const names = (n: number) => Array.from({ length: n }, (_, i) => `name20-${String(i).padStart(6, '0')}-xxxxxx`);
  const fits = listingOf(names(127));
  t.is(fits.size, 27 + 127 * 32);
  t.deepEqual(fits.blockStarts, [0]);
  const spills = listingOf(names(129));
  t.deepEqual(spills.blockStarts, [0, 129], "the dots and 127 names fill 4091 bytes");
  t.is(spills.size, 4096 + 2 * 32);
  t.is(spills.fullBlocks, 1);
  t.is(spills.tailSize, 64);
});

test('a block holds dirents, then names without padding; the rest is left zero', (t) => {
  const listing = listingOf(['bb']);
  listing.nids.forEach((_, i) => (listing.nids[i] = 100 + i));
  const block = new Uint8Array(64).fill(0);
  listing.writeBlock(0, block, 0);
  const view = new DataView(block.buffer);
  t.is(listing.size, 3 * 12 + 1 + 2 + 2);
  t.deepEqual([0, 1, 2].map((i) => view.getUint16(i * 12 + 8, true)), [36, 37, 39]);
  t.deepEqual([0, 1, 2].map((i) => Number(view.getBigUint64(i * 12, true))), [100, 101, 102]);
  t.deepEqual([0, 1, 2].map((i) => block[i * 12 + 10]), [FileType.Directory, FileType.Directory, FileType.Regular]);
  t.is(Buffer.from(block.subarray(36, 41)).toString('latin1'), '...bb');
  t.true(block.subarray(41).every((b) => b === 0));
});

test('directories count their subdirectory links', (t) => {
  const tree = new LayerTree();
  for (const e of [tarEntry('d1', 'directory'), tarEntry('d2/x', 'file'), tarEntry('f', 'file')]) tree.add(e);
  t.is(new DirectoryListing(tree.root).subdirectoryLinks, 4);
});
