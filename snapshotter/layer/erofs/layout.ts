/**
 * Phase 2: every address in the image, computed from the tree alone.
 *
 * The walk, the order of reservations and the moments addresses are fixed
 * copy mkfs.erofs 1.8.10, because each of them changes where later things
 * land:
 *   order: erofs_mkfs_dump_tree (lib/inode.c, v1.8.10) — the root first,
 *     then directory by directory: all new children of a directory in dirent
 *     order, then its subdirectories ahead of the rest of the queue, then
 *     its own dirents;
 *   erofs_rebuild_handle_inode / erofs_mkfs_handle_nondirectory — data
 *     blocks before the inode, the tail block after it;
 *   erofs_prepare_inode_buffer / erofs_write_tail_end — inline tails;
 *   erofs_write_dir_file / erofs_lookupnid — nids fixed while the parent's
 *     dirents are written.
 * The result is a plan: what goes where; writer.ts turns it into bytes.
 */
import { LayerFormatError } from '../../core/errors.js';
import type { ByteString } from '../tar/entry.js';
import { BlockAllocator, type Reservation } from './allocator.js';
import { DirectoryListing } from './dir.js';
import {
  BLOCK_SIZE,
  DataLayout,
  FEATURE_COMPAT_MTIME,
  FEATURE_COMPAT_SB_CHKSUM,
  FEATURE_COMPAT_XATTR_FILTER,
  INODE_COMPACT,
  INODE_EXTENDED,
  INODE_SLOT_SIZE,
  NULL_ADDR,
  S_IFBLK,
  S_IFCHR,
  S_IFIFO,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  S_IFSOCK,
  SUPER_END,
} from './format.js';
import type { Inode } from './tree.js';
import { MAX_XATTR_BODY, OVERLAY_ORIGIN, nameFilter, xattrBodySize, type Xattr } from './xattr.js';

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

/** An inode as it will be written (with its xattrs and inline tail, an extent of the image). */
export interface PlacedInode {
  readonly kind: 'inode';
  readonly inode: Inode;
  /** Byte position of the on-disk inode (nid << 5). */
  readonly pos: number;
  readonly nid: number;
  /** i_ino: 1, 2, 3 … in the order inodes were prepared. */
  readonly ino: number;
  readonly extended: boolean;
  readonly layout: DataLayout;
  /** i_u of flat inodes: first data block, NULL_ADDR without blocks, 0 when never set. */
  readonly blkaddr: number;
  readonly nlink: number;
  readonly size: number;
  readonly xattrs: readonly Xattr[];
  readonly xattrSize: number;
  readonly listing: DirectoryListing | undefined;
  /** Bytes of tail data stored right after the inode and its xattrs. */
  readonly inlineSize: number;
}

/** A byte range of the image and where its bytes come from. */
export type Extent =
  | PlacedInode
  | { readonly kind: 'dirents'; readonly pos: number; readonly listing: DirectoryListing; readonly block: number }
  | { readonly kind: 'file'; readonly pos: number; readonly dataOffset: number; readonly length: number }
  | { readonly kind: 'symlink'; readonly pos: number; readonly target: ByteString };

export interface ImagePlan {
  readonly blocks: number;
  readonly rootNid: number;
  readonly inodes: number;
  readonly featureCompat: number;
  /** Sorted by position, not overlapping; everything else is zero. */
  readonly extents: readonly Extent[];
}

export function extentLength(extent: Extent): number {
  switch (extent.kind) {
    case 'inode':
      return (extent.extended ? INODE_EXTENDED.size : INODE_COMPACT.size) + extent.xattrSize + extent.inlineSize;
    case 'dirents': {
      const l = extent.listing;
      return extent.block < l.fullBlocks ? BLOCK_SIZE : l.tailSize;
    }
    case 'file': return extent.length;
    case 'symlink': return extent.target.length;
  }
}

/**
 * A PlacedInode while the planner works on it. One exists per inode until the
 * image is written, so it keeps few fields: what can be derived is a getter,
 * and the block address is kept as a small integer (-1 for NULL_ADDR) because
 * a u32 above 2^31 would make V8 box the field in every instance.
 */
class Placement implements PlacedInode {
  pos = 0;
  nid = 0;
  ino = 0;
  layout = DataLayout.FlatPlain;
  private block = 0;
  inlineSize = 0;
  inodeRes: Reservation | undefined;
  dataRes: Reservation | undefined;
  /** Tail bytes not yet placed (idata_size). */
  tail = 0;
  lazyTailBlock = false;

  constructor(
    readonly inode: Inode,
    readonly extended: boolean,
    readonly nlink: number,
    readonly xattrSize: number,
    readonly listing: DirectoryListing | undefined,
  ) {}

  get kind(): 'inode' {
    return 'inode';
  }

  get blkaddr(): number {
    return this.block < 0 ? NULL_ADDR : this.block;
  }

  set blkaddr(address: number) {
    this.block = address === NULL_ADDR ? -1 : address;
  }

  get size(): number {
    return this.listing ? this.listing.size : this.inode.size;
  }

  get xattrs(): readonly Xattr[] {
    return xattrsOf(this.inode);
  }
}

/** The xattrs an inode is written with: a directory holding whiteouts also gets trusted.overlay.origin. */
function xattrsOf(inode: Inode): readonly Xattr[] {
  return inode.whiteouts ? [...inode.xattrs, OVERLAY_ORIGIN] : inode.xattrs;
}

export function planImage(root: Inode): ImagePlan {
  return new Planner().run(root);
}

class Planner {
  private readonly allocator = new BlockAllocator();
  private readonly placed = new Map<Inode, Placement>();
  private readonly extents: Extent[] = [];
  private lastFileExtent: { readonly kind: 'file'; readonly pos: number; readonly dataOffset: number; length: number } | undefined;
  private inos = 0;
  private featureCompat = FEATURE_COMPAT_SB_CHKSUM | FEATURE_COMPAT_MTIME;

  run(root: Inode): ImagePlan {
    // erofs_reserve_sb: the superblock pins block 0.
    const superblock = this.allocator.allocate('meta', 0)!;
    this.allocator.grow(superblock, SUPER_END);
    this.allocator.map(superblock);

    this.handle(root);
    // erofs_fixup_meta_blkaddr: the root nid is fixed at once; it must fit the superblock's 16 bits.
    const rootNid = this.lookupNid(root);
    if (rootNid > U16_MAX) throw new LayerFormatError('the root directory inode does not fit the first 2 MiB of the image');

    const queue: Inode[] = [root];
    while (queue.length > 0) {
      const dir = queue.pop()!;
      const subdirs: Inode[] = [];
      // An inode is visited once: the first of its hard links in this walk places it.
      const listing = this.placed.get(dir)!.listing!;
      for (let i = 0; i < listing.length; i++) {
        const name = listing.names[i]!;
        const inode = listing.inodes[i]!;
        if (name === '.' || name === '..' || this.placed.has(inode)) continue;
        this.handle(inode);
        if (inode.isDirectory) subdirs.push(inode);
      }
      for (let i = subdirs.length - 1; i >= 0; i--) queue.push(subdirs[i]!);
      this.writeDirectory(dir);
    }

    this.allocator.map();
    const blocks = this.allocator.blocks;
    if (blocks > U32_MAX) throw new LayerFormatError(`the image would need ${blocks} blocks, more than 32-bit block addresses reach`);
    for (const node of this.placed.values()) {
      node.pos = this.allocator.position(node.inodeRes!);
      node.inodeRes = undefined;
      this.extents.push(node);
    }
    this.extents.sort((a, b) => a.pos - b.pos);
    return { blocks, rootNid, inodes: this.inos, featureCompat: this.featureCompat, extents: this.extents };
  }

  /** erofs_rebuild_handle_inode. */
  private handle(inode: Inode): void {
    // With -T every mtime is the build time, so only sizes, ids and link counts force the 64-byte form.
    const extended = inode.size > U32_MAX || inode.uid > U16_MAX || inode.gid > U16_MAX || inode.nlink > U16_MAX;
    const xattrs = xattrsOf(inode);
    const xattrSize = xattrBodySize(xattrs);
    if (xattrSize > MAX_XATTR_BODY) throw new LayerFormatError(`an inode carries ${xattrSize} bytes of xattrs, more than ${MAX_XATTR_BODY}`);
    if (xattrSize > 0 && nameFilter(xattrs) !== 0) this.featureCompat |= FEATURE_COMPAT_XATTR_FILTER;

    const listing = inode.isDirectory ? new DirectoryListing(inode) : undefined;
    // The listing holds all later steps need of the directory; dropping the name map now keeps one copy of the names.
    if (listing) inode.dir = undefined;
    let nlink = inode.nlink;
    if (listing) {
      // A compact inode cannot count more links; mkfs writes 1 rather than switch forms.
      nlink = listing.subdirectoryLinks;
      if (nlink > U16_MAX && !extended) nlink = 1;
    }
    const p = new Placement(inode, extended, nlink, xattrSize, listing);
    this.placed.set(inode, p);

    const type = inode.mode & S_IFMT;
    if (listing) {
      p.layout = DataLayout.FlatInline;
      p.tail = listing.tailSize;
      this.prepareInode(p);
      return;
    }
    if (type === S_IFLNK || (type === S_IFREG && inode.dataOffset >= 0)) {
      // erofs_write_file_from_buffer / write_uncompressed_file_from_fd: whole blocks now, the tail later.
      p.layout = DataLayout.FlatInline;
      const whole = Math.floor(p.size / BLOCK_SIZE);
      this.allocateData(p, whole);
      if (whole > 0) this.pushData(p, p.blkaddr * BLOCK_SIZE, 0, whole * BLOCK_SIZE);
      p.tail = p.size % BLOCK_SIZE;
    }
    this.prepareInode(p);
    this.writeTail(p);
  }

  /** erofs_allocate_inode_bh_data: whole blocks, mapped at once. */
  private allocateData(p: Placement, blocks: number): void {
    if (blocks === 0) {
      p.blkaddr = NULL_ADDR;
      return;
    }
    const res = this.allocator.allocate(p.listing ? 'directory' : 'data', blocks * BLOCK_SIZE)!;
    this.allocator.map(res);
    p.dataRes = res;
    p.blkaddr = this.allocator.position(res) / BLOCK_SIZE;
  }

  /** erofs_prepare_inode_buffer: the inode slot, with the tail inline when it fits in the same block. */
  private prepareInode(p: Placement): void {
    const size = (p.extended ? INODE_EXTENDED.size : INODE_COMPACT.size) + p.xattrSize;
    let res: Reservation | undefined;
    // -Enoinline_data: regular files never inline their tail.
    if (p.layout === DataLayout.FlatInline && (p.inode.mode & S_IFMT) !== S_IFREG) {
      if (p.tail === 0) p.layout = DataLayout.FlatPlain;
      res = this.allocator.allocate('inode', size, p.tail);
      if (res && p.tail > 0) {
        this.allocator.append(res, p.tail);
        p.inlineSize = p.tail;
      }
    }
    if (!res) {
      p.layout = DataLayout.FlatPlain;
      // erofs_prepare_tail_block: a tail block after the data, or one allocated later.
      if (p.tail > 0) {
        if (p.dataRes) this.allocator.grow(p.dataRes, BLOCK_SIZE);
        else p.lazyTailBlock = true;
      }
      res = this.allocator.allocate('inode', size)!;
    }
    p.inodeRes = res;
    p.ino = ++this.inos;
  }

  /** erofs_write_tail_end: a tail that is not inline gets a block of its own (or the one reserved after the data). */
  private writeTail(p: Placement): void {
    if (p.tail > 0 && p.inlineSize === 0) {
      let res = p.dataRes;
      if (!res) {
        res = this.allocator.allocate(p.listing ? 'directory' : 'data', BLOCK_SIZE)!;
        this.allocator.map(res);
        p.blkaddr = this.allocator.position(res) / BLOCK_SIZE;
        p.dataRes = res;
      } else {
        if (p.lazyTailBlock) {
          this.allocator.grow(res, BLOCK_SIZE);
          p.lazyTailBlock = false;
        }
        this.allocator.map(res);
      }
      const pos = this.allocator.endOf(res) - BLOCK_SIZE;
      const whole = Math.floor(p.size / BLOCK_SIZE);
      if (p.listing) this.extents.push({ kind: 'dirents', pos, listing: p.listing, block: whole });
      else this.pushData(p, pos, whole * BLOCK_SIZE, p.tail);
      p.tail = 0;
    }
    if (p.dataRes) {
      this.allocator.release(p.dataRes);
      p.dataRes = undefined;
    }
  }

  private pushData(p: Placement, pos: number, from: number, length: number): void {
    const inode = p.inode;
    if (inode.symlink !== undefined) {
      this.extents.push({ kind: 'symlink', pos, target: inode.symlink.slice(from, from + length) });
      return;
    }
    const dataOffset = inode.dataOffset + from;
    // A tail in the block right after the file's whole blocks continues their extent: one extent per file, not two.
    const last = this.lastFileExtent;
    if (last && last.pos + last.length === pos && last.dataOffset + last.length === dataOffset) {
      last.length += length;
      return;
    }
    this.lastFileExtent = { kind: 'file', pos, dataOffset, length };
    this.extents.push(this.lastFileExtent);
  }

  /** erofs_write_dir_file: whole dirent blocks, then the nids of every entry, then the tail. */
  private writeDirectory(dir: Inode): void {
    const p = this.placed.get(dir)!;
    const listing = p.listing!;
    this.allocateData(p, listing.fullBlocks);
    for (let i = 0; i < listing.length; i++) listing.nids[i] = this.lookupNid(listing.inodes[i]!);
    for (let k = 0; k < listing.fullBlocks; k++) {
      this.extents.push({ kind: 'dirents', pos: (p.blkaddr + k) * BLOCK_SIZE, listing, block: k });
    }
    this.writeTail(p);
  }

  /** erofs_lookupnid: maps the inode's block if needed; inodes never prepared keep nid 0. */
  private lookupNid(inode: Inode): number {
    const p = this.placed.get(inode);
    if (!p?.inodeRes) return 0;
    if (p.nid <= 0) {
      this.allocator.map(p.inodeRes);
      p.nid = this.allocator.position(p.inodeRes) / INODE_SLOT_SIZE;
    }
    return p.nid;
  }
}

/** i_u for an inode: the device number for devices, the block address otherwise. */
export function inodeUnion(node: PlacedInode): number {
  switch (node.inode.mode & S_IFMT) {
    case S_IFCHR:
    case S_IFBLK:
    case S_IFIFO:
    case S_IFSOCK:
      return node.inode.rdev;
    default:
      return node.blkaddr;
  }
}
