/**
 * The block allocator of mkfs.erofs 1.8.10 (lib/cache.c), reproduced
 * decision for decision: where an inode lands depends on which buffer
 * blocks exist, which are mapped, how full each is, and the order in which
 * they were touched, so a "reasonable" allocator would not give the same
 * bytes.
 *
 * Space is reserved in buffer blocks of two kinds. DATA blocks get an
 * address at once, at the tail of the image. META blocks (superblock,
 * inodes, directory blocks) are kept in a list without an address until
 * something needs one; then every unmapped block before them in the list is
 * placed at the tail too, in list order (erofs_mapbh). A new inode goes into
 * the existing META block where it fits tightest (erofs_bfind_for_attach).
 */
import { InternalError } from '../../core/errors.js';
import { BLOCK_SIZE, INODE_SLOT_SIZE } from './format.js';

const MASK = BLOCK_SIZE - 1;
const UNMAPPED = -1;

const enum Space {
  Data = 0,
  Meta = 1,
}

/** What the space is for; fixes its kind and alignment (get_alignsize). */
export type Purpose = 'data' | 'inode' | 'directory' | 'meta';
const PURPOSES: Record<Purpose, readonly [Space, number]> = {
  data: [Space.Data, BLOCK_SIZE],
  inode: [Space.Meta, INODE_SLOT_SIZE],
  directory: [Space.Meta, BLOCK_SIZE],
  meta: [Space.Meta, 1],
};

/** One reservation inside a buffer block (erofs_buffer_head). */
export class Reservation {
  constructor(
    readonly block: BufferBlock,
    readonly offset: number,
  ) {}
}

/** A run of blocks holding reservations of one kind (erofs_buffer_block). */
class BufferBlock {
  prev: BufferBlock = this;
  next: BufferBlock = this;
  address = UNMAPPED;
  /** Bytes used so far (buffers.off); the next reservation starts at or after it. */
  used = 0;
  blocks = 0;
  readonly reservations: Reservation[] = [];
  /** Where this block is filed: its bucket table and waterline. */
  filed: Buckets | undefined;
  waterline = 0;

  constructor(readonly space: Space) {}
}

/** Buffer blocks by space, mapped or not, and used % BLOCK_SIZE (the "watermeter"), with a bitmap of non-empty buckets. */
class Buckets {
  readonly sets: Array<Set<BufferBlock> | undefined> = new Array(BLOCK_SIZE);
  readonly nonEmpty = new Uint32Array(BLOCK_SIZE / 32);

  add(block: BufferBlock, waterline: number): void {
    let set = this.sets[waterline];
    if (!set) this.sets[waterline] = set = new Set();
    set.add(block);
    block.filed = this;
    block.waterline = waterline;
    this.nonEmpty[waterline >> 5]! |= 1 << (waterline & 31);
  }

  remove(block: BufferBlock): void {
    const set = this.sets[block.waterline]!;
    set.delete(block);
    block.filed = undefined;
    if (set.size === 0) this.nonEmpty[block.waterline >> 5]! &= ~(1 << (block.waterline & 31));
  }

  /** Highest waterline in [low, high] with blocks, or -1. */
  private highest(high: number, low: number): number {
    let word = high >> 5;
    let bits = this.nonEmpty[word]! & (0xffffffff >>> (31 - (high & 31)));
    for (;;) {
      if (bits !== 0) {
        const w = (word << 5) + 31 - Math.clz32(bits);
        return w >= low ? w : -1;
      }
      if (--word < low >> 5) return -1;
      bits = this.nonEmpty[word]!;
    }
  }

  /**
   * Non-empty waterlines met while counting a virtual index down from
   * `high` to `low` (waterline = index % BLOCK_SIZE); this is how
   * __erofs_find_next_bucket walks, wrapping past 0 at most once.
   */
  *descending(high: number, low: number): Generator<number> {
    let index = high;
    while (index >= low) {
      const base = index - (index & MASK);
      const segmentLow = Math.max(low, base);
      const w = this.highest(index & MASK, segmentLow & MASK);
      if (w < 0) {
        index = segmentLow - 1;
        continue;
      }
      yield w;
      index = base + w - 1;
    }
  }
}

const ENOSPC = -1;
const EINVAL = -2;

export class BlockAllocator {
  /** List head; its address stays unmapped, which ends every walk. */
  private readonly head = new BufferBlock(Space.Meta);
  private lastMapped: BufferBlock = this.head;
  /** First block after everything mapped so far. */
  private tail = 0;
  private readonly buckets = [
    [new Buckets(), new Buckets()],
    [new Buckets(), new Buckets()],
  ] as const;

  /** Image size in blocks once everything is mapped. */
  get blocks(): number {
    return this.tail;
  }

  /**
   * erofs_balloc: reserves `size` bytes, followed by `inline` bytes that
   * must not cross a block boundary. undefined means "does not fit in one
   * block" (ENOSPC); as in mkfs, the new empty block stays in the list.
   */
  allocate(purpose: Purpose, size: number, inline = 0): Reservation | undefined {
    const [space, align] = PURPOSES[purpose];
    let block = this.findBlock(space, size, inline, align);
    if (!block) {
      block = new BufferBlock(space);
      // Data goes right after the last mapped block so it is mapped next; metadata waits at the end of the list.
      this.insertAfter(block, space === Space.Data ? this.lastMapped : this.head.prev);
    }
    const result = this.attach(block, size, align, inline, false);
    if (result === ENOSPC) return undefined;
    if (result < 0) throw new InternalError(`EROFS allocator: cannot reserve ${size} bytes (${purpose})`);
    return this.reserve(block, result);
  }

  /** erofs_battach: `size` more bytes right after `after`, which must be the block's last reservation. */
  append(after: Reservation, size: number): Reservation {
    this.assertLast(after);
    const result = this.attach(after.block, size, 1, 0, false);
    if (result < 0) throw new InternalError('EROFS allocator: inline data does not fit after its inode');
    return this.reserve(after.block, result);
  }

  /** erofs_bh_balloon: grows the last reservation of a block by `size` bytes. */
  grow(reservation: Reservation, size: number): void {
    this.assertLast(reservation);
    if (this.attach(reservation.block, size, 1, 0, false) < 0) throw new InternalError('EROFS allocator: cannot extend a data run');
  }

  /** erofs_mapbh: gives addresses to every unmapped block up to the reservation's (all of them without one). */
  map(reservation?: Reservation): void {
    const block = reservation?.block;
    if (block && block.address !== UNMAPPED) return;
    let t = this.lastMapped;
    do {
      t = t.next;
      if (t === this.head) break;
      this.mapOne(t);
    } while (t !== block);
  }

  /** erofs_bdrop: forgets a reservation; a block left empty leaves the list. */
  release(reservation: Reservation): void {
    const block = reservation.block;
    const index = block.reservations.lastIndexOf(reservation);
    if (index < 0) throw new InternalError('EROFS allocator: reservation released twice');
    block.reservations.splice(index, 1);
    if (block.reservations.length > 0) return;
    if (block === this.lastMapped) this.lastMapped = block.prev;
    block.filed?.remove(block);
    block.prev.next = block.next;
    block.next.prev = block.prev;
  }

  /** Byte position of a reservation; its block must be mapped. */
  position(reservation: Reservation): number {
    const block = reservation.block;
    if (block.address === UNMAPPED) throw new InternalError('EROFS allocator: position of an unmapped block');
    return block.address * BLOCK_SIZE + reservation.offset;
  }

  /** Byte position just after a reservation (erofs_btell(bh, true)). */
  endOf(reservation: Reservation): number {
    const block = reservation.block;
    const i = block.reservations.indexOf(reservation);
    const end = block.reservations[i + 1]?.offset ?? block.used;
    return block.address * BLOCK_SIZE + end;
  }

  private reserve(block: BufferBlock, offset: number): Reservation {
    const r = new Reservation(block, offset);
    block.reservations.push(r);
    return r;
  }

  private assertLast(reservation: Reservation): void {
    const list = reservation.block.reservations;
    if (list[list.length - 1] !== reservation) throw new InternalError('EROFS allocator: only the last reservation of a block can grow');
  }

  private insertAfter(block: BufferBlock, prev: BufferBlock): void {
    block.prev = prev;
    block.next = prev.next;
    prev.next.prev = block;
    prev.next = block;
  }

  private bucketsOf(block: BufferBlock): Buckets {
    return this.buckets[block.space][block.address === UNMAPPED ? 0 : 1];
  }

  /** Refiles a block under its current waterline, at the end of that bucket (erofs_update_bwatermeter). */
  private refile(block: BufferBlock): void {
    block.filed?.remove(block);
    this.bucketsOf(block).add(block, block.used & MASK);
  }

  private mapOne(block: BufferBlock): void {
    if (block.address === UNMAPPED) {
      block.address = this.tail;
      this.lastMapped = block;
      this.refile(block);
    }
    this.tail = Math.max(this.tail, block.address + block.blocks);
  }

  /**
   * __erofs_battach: the offset where `size` bytes would go in `block`, or
   * an error; with `dryRun` false it also takes the space. A block may only
   * grow past its last block if nothing is mapped after it.
   */
  private attach(block: BufferBlock, size: number, align: number, inline: number, dryRun: boolean): number {
    const aligned = Math.ceil(block.used / align) * align;
    if (((aligned + size + MASK) & MASK) + inline > MASK) return ENOSPC;
    const end = aligned + size + inline;
    const capacity = block.blocks * BLOCK_SIZE;
    let tailUpdate = false;
    if (end >= capacity) {
      const beyond = end > capacity;
      if (beyond && block.next.address !== UNMAPPED) return EINVAL;
      if (block.address !== UNMAPPED) {
        tailUpdate = this.tail === block.address + block.blocks;
        if (beyond && !tailUpdate) return EINVAL;
      }
    }
    if (!dryRun) {
      block.used = aligned + size;
      block.blocks = Math.max(block.blocks, Math.ceil(block.used / BLOCK_SIZE));
      if (tailUpdate) this.tail = block.address + block.blocks;
      this.refile(block);
    }
    return aligned;
  }

  /** How full the block holding the reservation would be after it (the "used" of bfind); 1..BLOCK_SIZE. */
  private static fill(aligned: number, size: number): number {
    return ((aligned + size + MASK) & MASK) + 1;
  }

  /**
   * erofs_bfind_for_attach: the block where the reservation ends highest
   * within its block (tightest fit). First mapped blocks with room left in
   * their last block, then the last mapped block (which may grow if it ends
   * the image), then unmapped blocks, which may always grow.
   */
  private findBlock(space: Space, size: number, inline: number, align: number): BufferBlock | undefined {
    if (align === BLOCK_SIZE) return undefined;
    const used0 = Math.floor((BLOCK_SIZE - ((size + inline) & MASK)) / align) * align;
    let best: BufferBlock | undefined;
    let bestFill = 0;
    const consider = (block: BufferBlock): boolean => {
      const aligned = this.attach(block, size, align, inline, true);
      if (aligned < 0) return false;
      const fill = BlockAllocator.fill(aligned, size) + inline;
      if (fill > bestFill) {
        bestFill = fill;
        best = block;
      }
      return true;
    };

    // The first scan stops above waterline 0; a later one wraps round to just above used0.
    // Reservations of a block or more skip the mapped scan, and their unmapped scan is the first.
    let low = BLOCK_SIZE + 1;
    if (size + inline < BLOCK_SIZE) {
      const mapped = this.buckets[space][1];
      for (const w of mapped.descending(used0 + BLOCK_SIZE, low)) {
        const it = mapped.sets[w]!.values();
        let candidate: BufferBlock | undefined = it.next().value;
        // The last mapped block is tried on its own below.
        if (candidate && candidate.next.address === UNMAPPED) candidate = it.next().value;
        if (candidate && consider(candidate)) break;
      }
      const last = this.lastMapped;
      if (last !== this.head && last.space === space) consider(last);
      low = used0 + align;
    }
    const unmapped = this.buckets[space][0];
    for (const w of unmapped.descending(used0 + BLOCK_SIZE, low)) {
      const candidate: BufferBlock | undefined = unmapped.sets[w]!.values().next().value;
      if (candidate && consider(candidate)) break;
    }
    return best;
  }
}
