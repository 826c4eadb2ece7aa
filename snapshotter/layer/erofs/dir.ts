/**
 * Directory contents: the sorted entry list (with '.' and '..'), how the
 * dirents split into blocks, and the bytes of each block.
 * Order and packing follow erofs_prepare_dir_file / erofs_write_dir_file (v1.8.10).
 */
import type { ByteString } from '../tar/entry.js';
import { BLOCK_SIZE, DIRENT, FileType, writeName, writeStruct } from './format.js';
import type { Inode } from './tree.js';

/**
 * A directory's entries in dirent order, kept as parallel arrays rather than
 * an object per entry: every inode of a layer is an entry somewhere, and the
 * listings live from layout until the image is written.
 */
export class DirectoryListing {
  readonly names: readonly ByteString[];
  readonly inodes: readonly Inode[];
  readonly types: readonly FileType[];
  /** Filled in when the directory is written (layout.ts); 0 if the inode was never placed. */
  readonly nids: number[];
  /** Index of the first entry of each block; the last block may be a partial tail. */
  readonly blockStarts: readonly number[];
  /** i_size: every block but the last counts as a full block. */
  readonly size: number;

  constructor(dir: Inode) {
    const contents = dir.dir!;
    const entries: { name: ByteString; type: FileType; inode: Inode }[] = [];
    for (const parent of contents.dotdots) {
      entries.push({ name: '.', type: FileType.Directory, inode: dir });
      entries.push({ name: '..', type: FileType.Directory, inode: parent });
    }
    for (const [name, d] of contents.children) {
      entries.push({ name, type: d.type, inode: d.inode! });
    }
    // Byte order (memcmp, shorter prefix first): the strings hold one byte per char. '.' and '..' sort like any name.
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

    const blockStarts: number[] = [];
    let used = BLOCK_SIZE;
    let size = 0;
    entries.forEach((e, i) => {
      const len = DIRENT.size + e.name.length;
      if (used + len > BLOCK_SIZE) {
        if (i > 0) size += BLOCK_SIZE;
        blockStarts.push(i);
        used = 0;
      }
      used += len;
    });
    this.names = entries.map((e) => e.name);
    this.inodes = entries.map((e) => e.inode);
    // Plain arrays: a typed array costs ~150 bytes of objects before its first element, and most directories are small.
    this.types = entries.map((e) => e.type);
    this.nids = entries.map(() => 0);
    this.blockStarts = blockStarts;
    this.size = size + used;
  }

  get length(): number {
    return this.names.length;
  }

  /** Blocks stored apart from the inode. */
  get fullBlocks(): number {
    return Math.floor(this.size / BLOCK_SIZE);
  }

  /** Bytes of the last, partial block (0 when the size is a multiple of the block size). */
  get tailSize(): number {
    return this.size % BLOCK_SIZE;
  }

  /** Number of entries that are directories (nlink of the directory, with '.' and '..'). */
  get subdirectoryLinks(): number {
    let n = 0;
    for (const type of this.types) if (type === FileType.Directory) n++;
    return n;
  }

  /** Writes block `index` (dirents, then names, no padding between names) into zeroed memory. */
  writeBlock(index: number, into: Uint8Array, at: number): void {
    const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
    const from = this.blockStarts[index]!;
    const to = this.blockStarts[index + 1] ?? this.names.length;
    let nameoff = (to - from) * DIRENT.size;
    for (let i = from; i < to; i++) {
      const name = this.names[i]!;
      writeStruct(view, at + (i - from) * DIRENT.size, DIRENT, { nid: this.nids[i]!, nameoff, file_type: this.types[i]! });
      writeName(into, at + nameoff, name);
      nameoff += name.length;
    }
  }
}
