/**
 * zstd decompression with the pure-JS `fzstd` decoder, plus the checks fzstd
 * leaves out. fzstd ignores the frame content checksum, so a damaged stream
 * mostly decodes to wrong bytes without any error (about 94% of single bit
 * flips in a trial), and it sizes its output by the header's content size,
 * silently dropping what does not fit. So we walk the frame structure
 * ourselves (RFC 8878 section 3.1: frame header, block headers, checksum),
 * give each frame to its own fzstd instance with a header that states no
 * content size, and check each frame's size and XXH64 checksum ourselves.
 * Frames that need a dictionary are refused; skippable frames are skipped.
 */
import { Decompress } from 'fzstd';
import { LayerFormatError } from '../core/errors.js';
import { Xxh64 } from './xxh64.js';

const FRAME_MAGIC = 0xfd2fb528;
/** Skippable frames: 0x184D2A50..0x184D2A5F. */
const SKIPPABLE_MAGIC = 0x184d2a50;
const MAX_BLOCK_SIZE = 128 * 1024;
const HINT = 'the zstd-compressed layer is damaged or truncated; fetch it again';

/** The next piece of frame structure: bytes to look at, or bytes to pass over. */
type Step =
  | { kind: 'collect'; length: number; then: (bytes: Uint8Array) => void; frameStart?: true }
  | { kind: 'skip'; length: number; then: () => void };

interface Frame {
  index: number;
  /** Compressed offset of the frame's magic number. */
  offset: number;
  /** The (rewritten) header was given to the decoder; the bytes that follow go to it as they come. */
  headerFed: boolean;
  contentSize: number | undefined;
  checksum: number | undefined;
  produced: number;
  hash: Xxh64;
  decoder: Decompress;
}

/**
 * A synchronous zstd decoder: `push()` compressed chunks, then `end()`; both
 * return the decompressed chunks they produced (fresh arrays, owned by the caller).
 */
export class ZstdDecoder {
  #consumed = 0;
  #produced = 0;
  #frameCount = 0;
  /** The zstd frame being read, from its magic number to its checksum. */
  #frame: Frame | undefined;
  #step: Step = this.#frameStartStep();
  /** Holds a step's bytes when they span chunks; the longest step is a 13-byte frame header rest. */
  readonly #scratch = new Uint8Array(16);
  #filled = 0;
  #output: Uint8Array[] = [];
  /** Set by the step that feeds a frame header: the frame's remaining bytes start at the current position. */
  #bodyStarts = false;

  push(chunk: Uint8Array): Uint8Array[] {
    let frameBytesFrom = 0;
    let position = 0;
    while (position < chunk.length) {
      const step = this.#step;
      const n = Math.min(step.length - this.#filled, chunk.length - position);
      if (step.kind === 'collect') this.#scratch.set(chunk.subarray(position, position + n), this.#filled);
      this.#filled += n;
      position += n;
      this.#consumed += n;
      if (this.#filled < step.length) break;
      this.#filled = 0;
      const open = this.#frame;
      if (step.kind === 'collect') step.then(this.#scratch.subarray(0, step.length));
      else step.then();
      if (this.#bodyStarts) {
        this.#bodyStarts = false;
        frameBytesFrom = position;
      } else if (open !== undefined && this.#frame === undefined) {
        this.#feed(open, chunk.subarray(frameBytesFrom, position), true);
        this.#check(open);
      }
    }
    if (this.#frame?.headerFed) this.#feed(this.#frame, chunk.subarray(frameBytesFrom, position), false);
    return this.#take();
  }

  end(): Uint8Array[] {
    const step = this.#step;
    if (this.#filled > 0 || step.kind !== 'collect' || !step.frameStart) {
      throw new LayerFormatError(`zstd stream is truncated: it ends inside a frame after ${this.#consumed} compressed bytes ` +
        `(${this.#produced} bytes decompressed)`, {}, { hint: HINT });
    }
    return this.#take();
  }

  #frameStartStep(): Step {
    return {
      kind: 'collect', length: 4, frameStart: true, then: (bytes) => {
        const magic = readLE(bytes, 0, 4);
        if (magic === FRAME_MAGIC) {
          this.#openFrame();
        } else if ((magic & 0xfffffff0) >>> 0 === SKIPPABLE_MAGIC) {
          this.#step = {
            kind: 'collect', length: 4, then: (size) => {
              const length = readLE(size, 0, 4);
              this.#step = length === 0 ? this.#frameStartStep() : { kind: 'skip', length, then: () => { this.#step = this.#frameStartStep(); } };
            },
          };
        } else {
          throw this.#corrupt(`no zstd frame magic number at compressed byte ${this.#consumed - 4}`);
        }
      },
    };
  }

  #openFrame(): void {
    const frame: Frame = {
      index: this.#frameCount++, offset: this.#consumed - 4, headerFed: false, contentSize: undefined, checksum: undefined,
      produced: 0, hash: new Xxh64(),
      decoder: new Decompress((chunk) => {
        if (chunk.length === 0) return;
        frame.produced += chunk.length;
        frame.hash.update(chunk);
        this.#produced += chunk.length;
        this.#output.push(chunk);
      }),
    };
    this.#frame = frame;
    this.#step = { kind: 'collect', length: 1, then: ([descriptor]) => this.#onDescriptor(frame, descriptor!) };
  }

  #onDescriptor(frame: Frame, descriptor: number): void {
    if (descriptor & 0x08) throw this.#corrupt('reserved bit set in the frame header');
    const singleSegment = (descriptor >> 5) & 1;
    const contentSizeFlag = descriptor >> 6;
    const hasChecksum = ((descriptor >> 2) & 1) === 1;
    const windowLength = singleSegment ? 0 : 1;
    const dictionaryIdLength = [0, 1, 2, 4][descriptor & 3]!;
    const contentSizeLength = contentSizeFlag === 0 ? singleSegment : [0, 2, 4, 8][contentSizeFlag]!;
    this.#step = {
      kind: 'collect', length: windowLength + dictionaryIdLength + contentSizeLength, then: (rest) => {
        const dictionaryId = readLE(rest, windowLength, dictionaryIdLength);
        if (dictionaryId !== 0) throw this.#corrupt(`the frame needs zstd dictionary ${dictionaryId}; dictionaries are not supported`);
        if (contentSizeLength > 0) {
          frame.contentSize = readLE(rest, windowLength + dictionaryIdLength, contentSizeLength) + (contentSizeLength === 2 ? 256 : 0);
        }
        // A single-segment frame's window is its content size: state a window at least that big instead.
        const window = singleSegment ? windowDescriptorFor(frame.contentSize!) : rest[0]!;
        this.#feed(frame, Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd, hasChecksum ? 0x04 : 0x00, window), false);
        frame.headerFed = true;
        this.#bodyStarts = true;
        this.#step = this.#blockHeaderStep(frame, hasChecksum);
      },
    };
  }

  #blockHeaderStep(frame: Frame, hasChecksum: boolean): Step {
    return {
      kind: 'collect', length: 3, then: (bytes) => {
        const header = readLE(bytes, 0, 3);
        const last = (header & 1) === 1;
        const type = (header >> 1) & 3;
        const size = header >>> 3;
        if (type === 3) throw this.#corrupt('reserved block type');
        if (size > MAX_BLOCK_SIZE) throw this.#corrupt(`block of ${size} bytes is larger than 128 KiB`);
        const next = (): void => {
          this.#step = !last ? this.#blockHeaderStep(frame, hasChecksum) : hasChecksum
            ? { kind: 'collect', length: 4, then: (checksum) => this.#closeFrame(frame, readLE(checksum, 0, 4)) }
            : this.#closeFrame(frame, undefined);
        };
        const bodyLength = type === 1 ? 1 : size; // an RLE block stores its byte once
        if (bodyLength === 0) next();
        else this.#step = { kind: 'skip', length: bodyLength, then: next };
      },
    };
  }

  #closeFrame(frame: Frame, checksum: number | undefined): Step {
    frame.checksum = checksum;
    this.#frame = undefined;
    return (this.#step = this.#frameStartStep());
  }

  #feed(frame: Frame, bytes: Uint8Array, final: boolean): void {
    try {
      frame.decoder.push(bytes, final);
    } catch (error) {
      // fzstd throws its own errors, and plain TypeErrors/RangeErrors on some damaged input.
      throw this.#corrupt(`fzstd: ${error instanceof Error ? error.message : String(error)}`, frame, error);
    }
  }

  #check(frame: Frame): void {
    if (frame.contentSize !== undefined && frame.produced !== frame.contentSize) {
      throw this.#corrupt(`the frame decoded to ${frame.produced} bytes, its header says ${frame.contentSize}`, frame);
    }
    if (frame.checksum !== undefined && frame.checksum !== Number(frame.hash.digest() & 0xffffffffn)) {
      throw this.#corrupt('frame content checksum mismatch', frame);
    }
  }

  #take(): Uint8Array[] {
    const output = this.#output;
    this.#output = [];
    return output;
  }

  #corrupt(what: string, frame = this.#frame, cause?: unknown): LayerFormatError {
    const where = frame === undefined
      ? `after ${this.#consumed} compressed bytes`
      : `in frame ${frame.index} (starting at compressed byte ${frame.offset})`;
    return new LayerFormatError(`zstd stream is corrupt: ${what}, ${where}; ${this.#produced} bytes were decompressed`,
      {}, { hint: HINT, cause });
  }
}

/** Decompresses a zstd stream; errors of the source pass through unchanged. */
export async function* decompressZstd(compressed: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array, void, undefined> {
  const decoder = new ZstdDecoder();
  for await (const chunk of compressed) yield* decoder.push(chunk);
  yield* decoder.end();
}

/** The smallest power-of-two window descriptor (exponent only) covering `size` bytes. */
function windowDescriptorFor(size: number): number {
  let exponent = 0;
  while (exponent < 31 && 2 ** (10 + exponent) < size) exponent++;
  return exponent << 3;
}

/** Little-endian unsigned integer of up to 8 bytes (exact below 2^53; content sizes beyond cannot match anyway). */
function readLE(bytes: Uint8Array, offset: number, length: number): number {
  let value = 0;
  for (let i = length - 1; i >= 0; i--) value = value * 256 + bytes[offset + i]!;
  return value;
}
