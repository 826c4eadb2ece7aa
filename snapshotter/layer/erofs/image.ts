/**
 * Phase 3: the bytes of a planned image, start to end, in chunks. Metadata
 * is rendered from the plan as each chunk is filled; file data is read back
 * from the spill. Block 0 comes first and already carries the superblock
 * checksum, so callers can hash and write the image in one pass.
 */
import type { DataSpill } from '../spill.js';
import { crc32c } from './checksum.js';
import {
  BLOCK_SIZE,
  BLOCK_SIZE_BITS,
  INODE_COMPACT,
  INODE_EXTENDED,
  InodeVersion,
  SUPER_BLOCK,
  SUPER_MAGIC_V1,
  SUPER_OFFSET,
  inodeFormat,
  writeName,
  writeStruct,
  xattrInodeCount,
} from './format.js';
import { extentLength, inodeUnion, type Extent, type ImagePlan, type PlacedInode } from './layout.js';
import { writeXattrBody } from './xattr.js';

export interface ErofsImage {
  readonly bytes: number;
  readonly blocks: number;
  readonly inodes: number;
  /**
   * The image in order, start to end, as chunks (<= 1 MiB); file data is
   * read back from the spill. A yielded chunk is valid only until the next
   * iteration step.
   */
  chunks(): Generator<Uint8Array>;
}

export interface ImageOptions {
  buildTime: number;
  /** 16 bytes at most (superblock volume_name). */
  volumeName: Uint8Array | undefined;
}

const CHUNK_SIZE = 1 << 20;

export class PlannedImage implements ErofsImage {
  readonly bytes: number;
  readonly blocks: number;
  readonly inodes: number;

  constructor(
    private readonly plan: ImagePlan,
    private readonly spill: DataSpill,
    private readonly options: ImageOptions,
  ) {
    this.blocks = plan.blocks;
    this.bytes = plan.blocks * BLOCK_SIZE;
    this.inodes = plan.inodes;
  }

  *chunks(): Generator<Uint8Array> {
    const buffer = new Uint8Array(Math.min(CHUNK_SIZE, this.bytes));
    const extents = this.plan.extents;
    let first = 0;
    for (let start = 0; start < this.bytes; start += buffer.length) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, this.bytes - start));
      chunk.fill(0);
      const end = start + chunk.length;
      for (let i = first; i < extents.length && extents[i]!.pos < end; i++) {
        this.render(extents[i]!, chunk, start);
      }
      while (first < extents.length && extents[first]!.pos + extentLength(extents[first]!) <= end) first++;
      if (start === 0) this.writeSuperblock(chunk);
      yield chunk;
    }
  }

  /** Writes the part of `extent` that falls into `chunk`, which starts at image offset `start`. */
  private render(extent: Extent, chunk: Uint8Array, start: number): void {
    const length = extentLength(extent);
    const from = Math.max(extent.pos, start);
    const to = Math.min(extent.pos + length, start + chunk.length);
    if (from >= to) return;
    const at = from - start;
    const skip = from - extent.pos;
    switch (extent.kind) {
      case 'file':
        this.spill.read(extent.dataOffset + skip, to - from, chunk.subarray(at));
        return;
      case 'symlink':
        writeName(chunk, at, extent.target.slice(skip, skip + to - from));
        return;
      case 'dirents':
      case 'inode': {
        // Metadata is rendered in place; only an inode that straddles two chunks goes through a copy.
        const whole = to - from === length;
        const into = whole ? chunk : new Uint8Array(length);
        const offset = whole ? at : 0;
        if (extent.kind === 'inode') this.writeInode(extent, into, offset);
        else extent.listing.writeBlock(extent.block, into, offset);
        if (!whole) chunk.set(into.subarray(skip, skip + to - from), at);
      }
    }
  }

  /** The on-disk inode, its xattr body and its inline tail at `at` in zeroed memory (erofs_iflush). */
  private writeInode(node: PlacedInode, into: Uint8Array, at: number): void {
    const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
    const { inode } = node;
    const icount = xattrInodeCount(node.xattrSize);
    const mode = inode.mode & 0xffff;
    const iu = inodeUnion(node);
    const ino = node.ino >>> 0;
    let p: number;
    if (node.extended) {
      writeStruct(view, at, INODE_EXTENDED, {
        i_format: inodeFormat(InodeVersion.Extended, node.layout),
        i_xattr_icount: icount,
        i_mode: mode,
        i_size: node.size,
        i_u: iu,
        i_ino: ino,
        i_uid: inode.uid,
        i_gid: inode.gid,
        i_mtime: this.options.buildTime,
        i_mtime_nsec: 0,
        i_nlink: node.nlink >>> 0,
      });
      p = at + INODE_EXTENDED.size;
    } else {
      writeStruct(view, at, INODE_COMPACT, {
        i_format: inodeFormat(InodeVersion.Compact, node.layout),
        i_xattr_icount: icount,
        i_mode: mode,
        i_nlink: node.nlink & 0xffff,
        i_size: node.size >>> 0,
        i_u: iu,
        i_ino: ino,
        i_uid: inode.uid & 0xffff,
        i_gid: inode.gid & 0xffff,
      });
      p = at + INODE_COMPACT.size;
    }
    if (node.xattrSize > 0) writeXattrBody(node.xattrs, into, p);
    p += node.xattrSize;
    if (node.inlineSize > 0) {
      // The inline tail is the last, partial dirent block or the end of the symlink target.
      if (node.listing) node.listing.writeBlock(node.listing.fullBlocks, into, p);
      else writeName(into, p, inode.symlink!.slice(inode.symlink!.length - node.inlineSize));
    }
  }

  /** The superblock at 1024, then crc32c over the rest of block 0 with the checksum field zero (erofs_enable_sb_chksum). */
  private writeSuperblock(block0: Uint8Array): void {
    const view = new DataView(block0.buffer, block0.byteOffset, block0.byteLength);
    const plan = this.plan;
    writeStruct(view, SUPER_OFFSET, SUPER_BLOCK, {
      magic: SUPER_MAGIC_V1,
      checksum: 0,
      feature_compat: plan.featureCompat,
      blkszbits: BLOCK_SIZE_BITS,
      root_nid: plan.rootNid,
      inos: plan.inodes,
      build_time: this.options.buildTime,
      build_time_nsec: 0,
      blocks: plan.blocks,
      ...(this.options.volumeName ? { volume_name: this.options.volumeName } : {}),
    });
    const crc = crc32c(0xffffffff, block0.subarray(SUPER_OFFSET, BLOCK_SIZE));
    view.setUint32(SUPER_OFFSET + SUPER_BLOCK.fields.checksum.offset, crc, true);
  }
}
