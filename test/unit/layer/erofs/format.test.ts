/** format.ts mirrors include/erofs_fs.h: the struct sizes and field offsets it asserts, and the device encoding. */
import test from 'ava';
import {
  DIRENT, INODE_COMPACT, INODE_EXTENDED, SUPER_BLOCK, SUPER_END, XATTR_ENTRY, XATTR_IBODY_HEADER,
  encodeDevice, inodeFormat, DataLayout, InodeVersion, writeStruct, xattrInodeCount,
} from '../../../../snapshotter/layer/erofs/format.js';

test('struct sizes match erofs_fs.h (BUILD_BUG_ON)', (t) => {
  t.is(SUPER_BLOCK.size, 128);
  t.is(INODE_COMPACT.size, 32);
  t.is(INODE_EXTENDED.size, 64);
  t.is(XATTR_IBODY_HEADER.size, 12);
  t.is(XATTR_ENTRY.size, 4);
  t.is(DIRENT.size, 12);
  t.is(SUPER_END, 1152);
});

test('superblock field offsets', (t) => {
  const f = SUPER_BLOCK.fields;
  const offsets = {
    magic: 0, checksum: 4, feature_compat: 8, blkszbits: 12, root_nid: 14, inos: 16, build_time: 24,
    build_time_nsec: 32, blocks: 36, meta_blkaddr: 40, xattr_blkaddr: 44, uuid: 48, volume_name: 64,
    feature_incompat: 80, extra_devices: 86, xattr_prefix_start: 92, packed_nid: 96, reserved2: 105,
  };
  for (const [name, offset] of Object.entries(offsets)) t.is(f[name as keyof typeof f].offset, offset, name);
});

test('inode field offsets', (t) => {
  t.like(INODE_COMPACT.fields, { i_size: { offset: 8 }, i_u: { offset: 16 }, i_ino: { offset: 20 }, i_uid: { offset: 24 }, i_gid: { offset: 26 } });
  t.like(INODE_EXTENDED.fields, {
    i_size: { offset: 8 }, i_u: { offset: 16 }, i_ino: { offset: 20 }, i_uid: { offset: 24 }, i_gid: { offset: 28 },
    i_mtime: { offset: 32 }, i_mtime_nsec: { offset: 40 }, i_nlink: { offset: 44 }, i_reserved2: { offset: 48 },
  });
});

test('writeStruct writes little-endian fields and leaves absent ones alone', (t) => {
  const bytes = new Uint8Array(DIRENT.size).fill(0xee);
  writeStruct(new DataView(bytes.buffer), 0, DIRENT, { nid: 0x0102030405, nameoff: 0x0a0b, file_type: 7 });
  t.deepEqual([...bytes], [0x05, 0x04, 0x03, 0x02, 0x01, 0, 0, 0, 0x0b, 0x0a, 7, 0xee]);
  t.throws(() => writeStruct(new DataView(new ArrayBuffer(128)), 0, SUPER_BLOCK, { volume_name: new Uint8Array(17) }), { instanceOf: RangeError });
});

test('i_format and i_xattr_icount', (t) => {
  t.is(inodeFormat(InodeVersion.Compact, DataLayout.FlatInline), 4);
  t.is(inodeFormat(InodeVersion.Extended, DataLayout.FlatPlain), 1);
  t.is(xattrInodeCount(0), 0);
  t.is(xattrInodeCount(12), 1);
  t.is(xattrInodeCount(32), 6);
});

test('device numbers use the kernel encoding', (t) => {
  t.is(encodeDevice(1, 3), 0x103);
  t.is(encodeDevice(8, 1), 0x801);
  t.is(encodeDevice(259, 300), 0x11032c);
  t.is(encodeDevice(4095, 0xfffff), 0xffffffff);
});

test('minors of 2^19 and more carry 1.8.10 sign extension (checked against mkfs in test/host)', (t) => {
  t.is(encodeDevice(0, 0x80000), 0xfff00000);
  t.is(encodeDevice(5, 0x80001), 0xfff00501);
  t.is(encodeDevice(4095, 0x7ffff), 0x7fffffff);
});
