/**
 * Phase 3: the bytes of a planned image, start to end, in chunks. Metadata
 * is rendered from the plan as each chunk is filled; file data is read back
 * from the spill. Block 0 comes first and already carries the superblock
 * checksum, so callers can hash and write the image in one pass.
 */
import { InternalError } from '../../core/errors.js';
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
  /**
   * The image bytes [start, start + into.length), whole blocks, into `into`
   * (any memory, e.g. a shared slot). Block 0 already carries the superblock
   * checksum, so callers can hash and write front to back as they go.
   */
  render(start: number, into: Uint8Array): void;
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
    for (let start = 0; start < this.bytes; start += buffer.length) {
      const chunk = buffer.subarray(0, Math.min(buffer.length, this.bytes - start));
      this.render(start, chunk);
      yield chunk;
    }
  }

  render(start: number, into: Uint8Array): void {
    const end = start + into.length;
    if (start < 0 || end > this.bytes || start % BLOCK_SIZE !== 0 || into.length % BLOCK_SIZE !== 0) {
      throw new InternalError(`EROFS image range ${start}..${end} is not whole blocks within 0..${this.bytes}`);
    }
    const extents = this.plan.extents;
    // Everything but file data is zeroed first (metadata is rendered into zeroed memory); file data
    // overwrites its range whole, and most of an image is file data.
    let zeroFrom = start;
    for (let i = this.firstExtentEndingAfter(start); i < extents.length && extents[i]!.pos < end; i++) {
      const extent = extents[i]!;
      if (extent.kind !== 'file') continue;
      zero(into, zeroFrom - start, extent.pos - start);
      zeroFrom = Math.min(end, extent.pos + extent.length);
    }
    zero(into, zeroFrom - start, into.length);
    for (let i = this.firstExtentEndingAfter(start); i < extents.length && extents[i]!.pos < end; i++) {
      this.renderExtent(extents[i]!, into, start);
    }
    if (start === 0) this.writeSuperblock(into);
  }

  /** Extents are sorted and do not overlap, so their ends are sorted too: a binary search finds the first to render. */
  private firstExtentEndingAfter(position: number): number {
    const extents = this.plan.extents;
    let low = 0;
    let high = extents.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      const e = extents[mid]!;
      if (e.pos + extentLength(e) <= position) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  /** Writes the part of `extent` that falls into `chunk`, which starts at image offset `start`. */
  private renderExtent(extent: Extent, chunk: Uint8Array, start: number): void {
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

const ZEROS = new Uint8Array(BLOCK_SIZE);

/**
 * Zeroes into[from, to). Copying from zeros, not fill(): on memory backed by a
 * SharedArrayBuffer, V8's fill() stores element by element (~7× slower here).
 */
function zero(into: Uint8Array, from: number, to: number): void {
  for (let at = Math.max(0, from); at < to; at += ZEROS.length) into.set(ZEROS.subarray(0, Math.min(ZEROS.length, to - at)), at);
}
