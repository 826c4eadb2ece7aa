/**
 * Directory contents: the sorted entry list (with '.' and '..'), how the
 * dirents split into blocks, and the bytes of each block.
 * Order and packing follow erofs_prepare_dir_file / erofs_write_dir_file (v1.8.10).
 */
import type { ByteString } from '../tar/entry.js';
import { BLOCK_SIZE, DIRENT, FileType, writeName, writeStruct } from './format.js';
import type { Inode } from './tree.js';

export interface DirEntry {
  readonly name: ByteString;
  readonly type: FileType;
  readonly inode: Inode;
  /** Filled in when the directory is written (layout.ts); 0 if the inode was never placed. */
  nid: number;
}

export class DirectoryListing {
  /** Entries in dirent order. */
  readonly entries: readonly DirEntry[];
  /** Index of the first entry of each block; the last block may be a partial tail. */
  readonly blockStarts: readonly number[];
  /** i_size: every block but the last counts as a full block. */
  readonly size: number;

  constructor(dir: Inode) {
    const contents = dir.dir!;
    const entries: DirEntry[] = [];
    for (const parent of contents.dotdots) {
      entries.push({ name: '.', type: FileType.Directory, inode: dir, nid: 0 });
      entries.push({ name: '..', type: FileType.Directory, inode: parent, nid: 0 });
    }
    for (const [name, d] of contents.children) {
      entries.push({ name, type: d.type, inode: d.inode!, nid: 0 });
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
    this.entries = entries;
    this.blockStarts = blockStarts;
    this.size = size + used;
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
    for (const e of this.entries) if (e.type === FileType.Directory) n++;
    return n;
  }

  /** Writes block `index` (dirents, then names, no padding between names) into zeroed memory. */
  writeBlock(index: number, into: Uint8Array, at: number): void {
    const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
    const from = this.blockStarts[index]!;
    const to = this.blockStarts[index + 1] ?? this.entries.length;
    let nameoff = (to - from) * DIRENT.size;
    for (let i = from; i < to; i++) {
      const e = this.entries[i]!;
      writeStruct(view, at + (i - from) * DIRENT.size, DIRENT, { nid: e.nid, nameoff, file_type: e.type });
      writeName(into, at + nameoff, e.name);
      nameoff += e.name.length;
    }
  }
}
