/** The 1.8.10 block allocator on small scenarios (the golden and differential tests cover it at scale). */
import test from 'ava';
import { BlockAllocator } from '../../../../snapshotter/layer/erofs/allocator.js';

function withSuperblock(): BlockAllocator {
  const a = new BlockAllocator();
  const sb = a.allocate('meta', 0)!;
  a.grow(sb, 1152);
  a.map(sb);
  return a;
}

test('the superblock pins block 0 and the first inode follows it', (t) => {
  const a = withSuperblock();
  const root = a.allocate('inode', 32)!;
  t.is(a.position(root), 1152);
  t.is(a.blocks, 1);
});

test('data is placed at the end of the image when mapped; metadata waits until its address is needed', (t) => {
  const a = withSuperblock();
  const data = a.allocate('data', 8192)!;
  a.map(data);
  t.is(a.position(data), 4096);
  t.is(a.blocks, 3);
  const inode = a.allocate('inode', 4000)!;
  t.throws(() => a.position(inode));
  a.release(data);
  const more = a.allocate('data', 4096)!;
  a.map(more);
  t.is(a.position(more), 3 * 4096, 'data keeps going at the tail');
  a.map(inode);
  t.is(a.position(inode), 4 * 4096, 'the inode block goes where the image ends when it is mapped');
});

test('the last mapped block may grow only while it ends the image', (t) => {
  const a = withSuperblock();
  const big = a.allocate('inode', 3000)!;
  t.is(a.position(big), 1152, 'block 0 grows into block 1');
  t.is(a.blocks, 2);
  const data = a.allocate('data', 4096)!;
  a.map(data);
  a.release(data);
  const next = a.allocate('inode', 4050)!;
  a.map();
  t.is(a.position(next), 3 * 4096, 'blocks 0-1 no longer end the image: a new block');
});

test('an inode goes where it fills its block best', (t) => {
  const a = withSuperblock();
  const data = a.allocate('data', 4096)!;
  a.map(data);
  a.release(data);
  const x = a.allocate('inode', 2000)!;
  t.is(a.position(x), 1152);
  const y = a.allocate('inode', 2000)!; // block 0 cannot grow any more: a new, unmapped block
  const z = a.allocate('inode', 900)!; // fits both; in block 0 it ends at 4068, in the new block at 2916
  t.is(a.position(z), 3168);
  a.map();
  t.is(a.position(y), 2 * 4096);
});

test('inline data may not cross a block boundary', (t) => {
  const a = withSuperblock();
  t.is(a.allocate('inode', 100, 4050), undefined);
  const ok = a.allocate('inode', 32, 2000)!;
  const tail = a.append(ok, 2000);
  t.is(a.position(tail), a.position(ok) + 32);
});
