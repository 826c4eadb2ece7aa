/**
 * The EROFS image builder: a tar sink that produces the bytes
 * `mkfs.erofs -Uclear -T<buildTime> -x-1 -Enoinline_data --aufs --tar=f`
 * of erofs-utils 1.8.10 produces for the same tar.
 *
 * Phase 1 (entry/data/end, tar order) builds the tree and spills file data;
 * phase 2 (finish) computes every address from the tree; phase 3
 * (ErofsImage.chunks) writes the image start to end.
 */
import { FailedPreconditionError, LayerFormatError } from '../../core/errors.js';
import { displayName, type TarEntry, type TarSink } from '../tar/entry.js';
import type { DataSpill } from '../spill.js';
import { PlannedImage, type ErofsImage } from './image.js';
import { planImage } from './layout.js';
import { LayerTree, type Inode } from './tree.js';

export type { ErofsImage } from './image.js';

/** The -T value Deckhouse Delivery Kit passes; every mtime in the image becomes this. */
export const DELIVERY_KIT_BUILD_TIME = 1750791050;

/** Size of the superblock's volume_name field. */
const VOLUME_NAME_SIZE = 16;

export interface ErofsBuilderOptions {
  buildTime?: number;
  spill: DataSpill;
}

export class ErofsBuilder implements TarSink {
  private readonly tree: LayerTree;
  private readonly spill: DataSpill;
  private readonly buildTime: number;
  private volumeName: Uint8Array | undefined;
  private state: 'entries' | 'ended' | 'finished' | 'failed' = 'entries';
  /** The entry whose data is being received. */
  private current: { entry: TarEntry; keep: Inode | undefined; remaining: number } | undefined;

  constructor(options: ErofsBuilderOptions) {
    this.spill = options.spill;
    this.buildTime = options.buildTime ?? DELIVERY_KIT_BUILD_TIME;
    this.tree = new LayerTree();
  }

  entry(entry: TarEntry): void {
    this.guard('entries', () => {
      this.endOfData();
      const keep = this.tree.add(entry);
      if (keep) keep.dataOffset = this.spill.size;
      this.current = { entry, keep, remaining: entry.type === 'file' ? entry.size : 0 };
    });
  }

  data(chunk: Uint8Array): void {
    this.guard('entries', () => {
      const current = this.current;
      if (!current || chunk.length > current.remaining) {
        throw new LayerFormatError('more file data than the entry size', current && where(current.entry));
      }
      current.remaining -= chunk.length;
      if (current.keep) this.spill.append(chunk);
    });
  }

  end(): void {
    this.guard('entries', () => {
      this.endOfData();
      this.state = 'ended';
    });
  }

  /**
   * A GNU volume header ('V', TarParserOptions.onVolumeLabel): the first 16
   * bytes of its name field become the superblock's volume_name; the last one wins.
   */
  volumeLabel(label: Uint8Array): void {
    this.guard('entries', () => {
      this.volumeName = Uint8Array.from(label.subarray(0, VOLUME_NAME_SIZE));
    });
  }

  /** Computes the layout (metadata only, in memory); the image bytes come from ErofsImage.chunks(). */
  finish(): ErofsImage {
    return this.guard('ended', () => {
      const plan = planImage(this.tree.root);
      this.state = 'finished';
      return new PlannedImage(plan, this.spill, { buildTime: this.buildTime, volumeName: this.volumeName });
    });
  }

  private endOfData(): void {
    const current = this.current;
    if (current && current.remaining > 0) {
      throw new LayerFormatError(`file data ended ${current.remaining} bytes early`, where(current.entry));
    }
    this.current = undefined;
  }

  /** Runs a step that is allowed in `state`; any failure leaves the builder unusable. */
  private guard<T>(state: ErofsBuilder['state'], step: () => T): T {
    if (this.state !== state) {
      throw new FailedPreconditionError(`EROFS builder: called in state "${this.state}"`, {
        hint: this.state === 'failed' ? 'an earlier entry failed; start a new conversion' : 'feed entries, then end(), then finish() once',
      });
    }
    try {
      return step();
    } catch (err) {
      this.state = 'failed';
      throw err;
    }
  }
}

function where(entry: TarEntry): { entry: string; offset: number } {
  return { entry: displayName(entry.path), offset: entry.offset };
}
