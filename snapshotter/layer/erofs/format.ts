/**
 * EROFS on-disk format: constants and struct layouts, mirroring
 * include/erofs_fs.h of erofs-utils 1.8.10. Nothing here decides where
 * anything goes; layout.ts does that. Struct sizes are asserted by
 * test/unit/layer/erofs/format.test.ts, as erofs_fs.h asserts them with
 * BUILD_BUG_ON.
 */

export const BLOCK_SIZE_BITS = 12;
/** mkfs.erofs uses min(page size, 4096); 4096 on every host that builds or mounts our layers. */
export const BLOCK_SIZE = 1 << BLOCK_SIZE_BITS;

export const SUPER_MAGIC_V1 = 0xe0f5e1e2;
/** The first 1024 bytes stay free for boot sectors. */
export const SUPER_OFFSET = 1024;

export const FEATURE_COMPAT_SB_CHKSUM = 0x1;
export const FEATURE_COMPAT_MTIME = 0x2;
export const FEATURE_COMPAT_XATTR_FILTER = 0x4;

/** Inode slots are 32 bytes; a nid is a byte offset (from meta_blkaddr) divided by this. */
export const INODE_SLOT_BITS = 5;
export const INODE_SLOT_SIZE = 1 << INODE_SLOT_BITS;

/** i_u of a flat inode that has no data blocks. */
export const NULL_ADDR = 0xffffffff;

/** Longest file name a dirent can hold. */
export const NAME_LEN = 255;

export const enum DataLayout {
  FlatPlain = 0,
  FlatInline = 2,
}

export const enum InodeVersion {
  Compact = 0,
  Extended = 1,
}

/** Dirent file types (EROFS_FT_*). */
export const enum FileType {
  Unknown = 0,
  Regular = 1,
  Directory = 2,
  CharDevice = 3,
  BlockDevice = 4,
  Fifo = 5,
  Socket = 6,
  Symlink = 7,
}

// POSIX mode bits as stored in i_mode.
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export function fileTypeOfMode(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFREG: return FileType.Regular;
    case S_IFDIR: return FileType.Directory;
    case S_IFCHR: return FileType.CharDevice;
    case S_IFBLK: return FileType.BlockDevice;
    case S_IFIFO: return FileType.Fifo;
    case S_IFSOCK: return FileType.Socket;
    case S_IFLNK: return FileType.Symlink;
    default: return FileType.Unknown;
  }
}

export const isDirectoryMode = (mode: number): boolean => (mode & S_IFMT) === S_IFDIR;

/** Xattr name indexes (EROFS_XATTR_INDEX_*); 0 means the full name is stored. */
export const XATTR_INDEX_USER = 1;
export const XATTR_INDEX_POSIX_ACL_ACCESS = 2;
export const XATTR_INDEX_POSIX_ACL_DEFAULT = 3;
export const XATTR_INDEX_TRUSTED = 4;
export const XATTR_INDEX_SECURITY = 6;

export const XATTR_FILTER_BITS = 32;
export const XATTR_FILTER_SEED = 0x25bbe08f;

// ---------------------------------------------------------------- structs

/** 'u8' … 'u64' are little-endian integers; a number is a byte array of that length. */
type FieldKind = 'u8' | 'u16' | 'u32' | 'u64' | number;
const WIDTH = { u8: 1, u16: 2, u32: 4, u64: 8 } as const;

export interface StructField {
  readonly offset: number;
  readonly kind: FieldKind;
  readonly size: number;
}

export interface StructLayout<K extends string> {
  readonly size: number;
  readonly fields: { readonly [F in K]: StructField };
}

/** Packed C struct: fields laid out in declaration order without padding. */
function struct<K extends string>(declaration: Record<K, FieldKind>): StructLayout<K> {
  const fields = {} as Record<K, StructField>;
  let offset = 0;
  for (const name of Object.keys(declaration) as K[]) {
    const kind: FieldKind = declaration[name];
    const size = typeof kind === 'number' ? kind : WIDTH[kind];
    fields[name] = { offset, kind, size };
    offset += size;
  }
  return { size: offset, fields };
}

export type StructValues<K extends string> = { readonly [F in K]?: number | Uint8Array };

/**
 * Encodes `values` into `view` at `at`; absent fields are left as they are
 * (callers pass zeroed memory). Byte-array values shorter than the field are
 * zero-padded by that, longer ones are an error.
 */
export function writeStruct<K extends string>(
  view: DataView,
  at: number,
  layout: StructLayout<K>,
  values: StructValues<K>,
): void {
  for (const name of Object.keys(values) as K[]) {
    const value = values[name];
    if (value === undefined) continue;
    const { offset, kind, size } = layout.fields[name];
    const pos = at + offset;
    if (typeof kind === 'number') {
      if (!(value instanceof Uint8Array) || value.length > size) throw new RangeError(`field ${name}: ${size} bytes expected`);
      new Uint8Array(view.buffer, view.byteOffset + pos, value.length).set(value);
    } else if (typeof value !== 'number') {
      throw new RangeError(`field ${name}: number expected`);
    } else if (kind === 'u8') {
      view.setUint8(pos, value);
    } else if (kind === 'u16') {
      view.setUint16(pos, value, true);
    } else if (kind === 'u32') {
      view.setUint32(pos, value, true);
    } else {
      view.setBigUint64(pos, BigInt(value), true);
    }
  }
}

export const SUPER_BLOCK = struct({
  magic: 'u32',
  checksum: 'u32',
  feature_compat: 'u32',
  blkszbits: 'u8',
  sb_extslots: 'u8',
  root_nid: 'u16',
  inos: 'u64',
  build_time: 'u64',
  build_time_nsec: 'u32',
  blocks: 'u32',
  meta_blkaddr: 'u32',
  xattr_blkaddr: 'u32',
  uuid: 16,
  volume_name: 16,
  feature_incompat: 'u32',
  u1: 'u16',
  extra_devices: 'u16',
  devt_slotoff: 'u16',
  dirblkbits: 'u8',
  xattr_prefix_count: 'u8',
  xattr_prefix_start: 'u32',
  packed_nid: 'u64',
  xattr_filter_reserved: 'u8',
  reserved2: 23,
});

/** i_u: raw_blkaddr for flat files, directories and symlinks; rdev for devices. */
export const INODE_COMPACT = struct({
  i_format: 'u16',
  i_xattr_icount: 'u16',
  i_mode: 'u16',
  i_nlink: 'u16',
  i_size: 'u32',
  i_reserved: 'u32',
  i_u: 'u32',
  i_ino: 'u32',
  i_uid: 'u16',
  i_gid: 'u16',
  i_reserved2: 'u32',
});

export const INODE_EXTENDED = struct({
  i_format: 'u16',
  i_xattr_icount: 'u16',
  i_mode: 'u16',
  i_reserved: 'u16',
  i_size: 'u64',
  i_u: 'u32',
  i_ino: 'u32',
  i_uid: 'u32',
  i_gid: 'u32',
  i_mtime: 'u64',
  i_mtime_nsec: 'u32',
  i_nlink: 'u32',
  i_reserved2: 16,
});

export const XATTR_IBODY_HEADER = struct({
  h_name_filter: 'u32',
  h_shared_count: 'u8',
  h_reserved2: 7,
});

export const XATTR_ENTRY = struct({
  e_name_len: 'u8',
  e_name_index: 'u8',
  e_value_size: 'u16',
});

export const DIRENT = struct({
  nid: 'u64',
  nameoff: 'u16',
  file_type: 'u8',
  reserved: 'u8',
});

/** The superblock ends here; the first inode may start right after it. */
export const SUPER_END = SUPER_OFFSET + SUPER_BLOCK.size;

/** Largest device numbers the kernel's 32-bit encoding holds. */
export const MAX_DEVICE_MAJOR = 0xfff;
export const MAX_DEVICE_MINOR = 0xfffff;

/**
 * i_u of a device inode: the kernel's new_encode_dev,
 * `(minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)`. mkfs 1.8.10
 * first builds a dev_t from tar's numbers in 32-bit int arithmetic and takes
 * it apart again with major()/minor(); for minor >= 2^19 that int is
 * negative, sign-extends, and the round trip sets bits 20..31. Kept so that
 * such devices hash the same.
 */
export function encodeDevice(major: number, minor: number): number {
  const dev = (major << 8) | (minor & 0xff) | ((minor & ~0xff) << 12);
  return (dev < 0 ? dev | 0xfff00000 : dev) >>> 0;
}

/** Copies a byte string (one byte per char) into `into` at `at`. */
export function writeName(into: Uint8Array, at: number, name: string): void {
  for (let i = 0; i < name.length; i++) into[at + i] = name.charCodeAt(i);
}

/** i_format: version bit 0, data layout bits 1..3. */
export function inodeFormat(version: InodeVersion, layout: DataLayout): number {
  return version | (layout << 1);
}

/** i_xattr_icount: 1 for the 12-byte header plus one per further 4 bytes. */
export function xattrInodeCount(xattrBodySize: number): number {
  return xattrBodySize === 0 ? 0 : (xattrBodySize - XATTR_IBODY_HEADER.size) / XATTR_ENTRY.size + 1;
}
