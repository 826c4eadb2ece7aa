/**
 * Streaming tar reader: a synchronous push parser that turns a tar byte stream
 * into TarSink calls, with the semantics of erofs-utils 1.8.10
 * `tarerofs_parse_tar` (the tool whose EROFS images we must reproduce byte for
 * byte). Where 1.8.10 silently misreads or ends early on damaged input, we
 * refuse with a LayerFormatError instead; each such place says so.
 *
 * File data is passed on as subarrays of the caller's chunks, never copied.
 */
import { InternalError, LayerFormatError } from '../../core/errors.js';
import { displayName, type ByteString, type TarEntry, type TarEntryType, type TarSink } from './entry.js';
import {
  BLOCK_SIZE, cString, field, hasUstarMagic, headerPath, parseNumeric, parseOctal, signedTypeflag, verifyChecksum,
} from './header.js';
import { applyPaxRecords, deliveredXattrs, type PaxOverrides } from './pax.js';

export interface TarWarning {
  message: string;
  /** Offset of the header block the warning is about. */
  offset: number;
  entry?: ByteString;
}

export interface TarParserOptions {
  /** Input 1.8.10 accepts with a message (e.g. skipped member types); the default drops them. */
  onWarning?: (warning: TarWarning) => void;
  /**
   * A GNU volume header ('V'): the first 16 bytes of its name field, raw. 1.8.10
   * copies them into the superblock's volume name; the last one wins.
   */
  onVolumeLabel?: (label: Uint8Array) => void;
}

/** Extended and GNU long-name headers bigger than this are refused (1.8.10 would allocate them). */
export const MAX_METADATA_SIZE = 1 << 20;
/** 1.8.10 refuses GNU long link names ('K') longer than PATH_MAX. */
const MAX_LONG_LINK_SIZE = 4096;
const MAX_UINT32 = 0xffffffff;
/** Linux device numbers: 12-bit major, 20-bit minor (what the EROFS rdev encoding holds). */
const MAX_DEV_MAJOR = 0xfff;
const MAX_DEV_MINOR = 0xfffff;

const ENTRY_TYPES: Record<string, TarEntryType> = {
  '0': 'file', '7': 'file', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'directory', '6': 'fifo',
};
/** S_IFMT bits per type, for 1.8.10's "mode disagrees with typeflag" warning. */
const TYPE_FORMAT_BITS: Record<TarEntryType, number> = {
  file: 0o100000, hardlink: 0o100000, symlink: 0o120000, char: 0o020000, block: 0o060000, directory: 0o040000, fifo: 0o010000,
};
const S_IFMT = 0o170000;

/**
 * What 1.8.10 keeps while it reads one member (one `tarerofs_parse_tar` call):
 * overrides from extended headers, and whether it has just seen a zero block.
 */
interface MemberState extends PaxOverrides {
  zeroBlockSeen: boolean;
  /** First header that belongs to this member (extended and GNU headers included). */
  offset: number | undefined;
}

type Metadata = { kind: 'x' | 'g' | 'L' | 'K'; data: Uint8Array; filled: number; offset: number; name: ByteString };

type State =
  | { kind: 'header' }
  | { kind: 'data'; remaining: number; padding: number; entry: TarEntry }
  | { kind: 'metadata'; metadata: Metadata }
  | { kind: 'skip'; remaining: number; what: string; entry: ByteString | undefined; offset: number }
  | { kind: 'finished' };

const HEADER: State = { kind: 'header' };

/**
 * Usage: `write()` each chunk in order, then `end()`. The sink gets
 * `entry()` for each member, `data()` with its bytes (regular files), and
 * `end()` from `end()` once the archive was complete. Bytes after the
 * end-of-archive marker are ignored, as tar does.
 *
 * The chunks passed to `sink.data()` are views of the caller's chunks: the
 * sink must use or copy them before returning and must not keep them.
 * After any error the parser is dead: later calls throw the same error.
 */
export class TarParser {
  readonly #sink: TarSink;
  readonly #options: TarParserOptions;
  #offset = 0;
  #state: State = HEADER;
  readonly #headerBuffer = new Uint8Array(BLOCK_SIZE);
  #headerFilled = 0;
  readonly #global: PaxOverrides = { xattrs: new Map() };
  #member: MemberState | undefined;
  #failure: { error: unknown } | undefined;

  constructor(sink: TarSink, options: TarParserOptions = {}) {
    this.#sink = sink;
    this.#options = options;
  }

  /** Bytes consumed so far. */
  get offset(): number {
    return this.#offset;
  }

  /** The end-of-archive marker has been read. */
  get finished(): boolean {
    return this.#state.kind === 'finished';
  }

  write(chunk: Uint8Array): void {
    this.#guard(() => {
      let position = 0;
      while (position < chunk.length) position += this.#consume(chunk, position);
    });
  }

  end(): void {
    this.#guard(() => {
      const state = this.#state;
      if (state.kind === 'finished') {
        this.#sink.end();
        return;
      }
      throw this.#truncation(state);
    });
    this.#failure = { error: new InternalError('TarParser used after end()') };
  }

  #guard(body: () => void): void {
    if (this.#failure) throw this.#failure.error;
    try {
      body();
    } catch (error) {
      this.#failure = { error };
      throw error;
    }
  }

  /** Consumes bytes of `chunk` from `position` for the current state; returns how many (at least one). */
  #consume(chunk: Uint8Array, position: number): number {
    const available = chunk.length - position;
    const state = this.#state;
    switch (state.kind) {
      case 'header': {
        if (this.#headerFilled === 0 && available >= BLOCK_SIZE) {
          this.#offset += BLOCK_SIZE;
          this.#onHeader(chunk.subarray(position, position + BLOCK_SIZE), this.#offset - BLOCK_SIZE);
          return BLOCK_SIZE;
        }
        const n = Math.min(BLOCK_SIZE - this.#headerFilled, available);
        this.#headerBuffer.set(chunk.subarray(position, position + n), this.#headerFilled);
        this.#headerFilled += n;
        this.#offset += n;
        if (this.#headerFilled === BLOCK_SIZE) {
          this.#headerFilled = 0;
          this.#onHeader(this.#headerBuffer, this.#offset - BLOCK_SIZE);
        }
        return n;
      }
      case 'data': {
        const n = Math.min(state.remaining, available);
        this.#offset += n;
        state.remaining -= n;
        if (state.remaining === 0) this.#state = this.#afterData(state.padding, state.entry.path, state.entry.offset);
        this.#sink.data(chunk.subarray(position, position + n));
        return n;
      }
      case 'metadata': {
        const { metadata } = state;
        const n = Math.min(metadata.data.length - metadata.filled, available);
        metadata.data.set(chunk.subarray(position, position + n), metadata.filled);
        metadata.filled += n;
        this.#offset += n;
        if (metadata.filled === metadata.data.length) this.#onMetadata(metadata);
        return n;
      }
      case 'skip': {
        const n = Math.min(state.remaining, available);
        this.#offset += n;
        state.remaining -= n;
        if (state.remaining === 0) this.#state = HEADER;
        return n;
      }
      case 'finished':
        this.#offset += available;
        return available;
    }
  }

  #afterData(padding: number, entry: ByteString | undefined, offset: number): State {
    return padding === 0 ? HEADER : { kind: 'skip', remaining: padding, what: 'the padding after a member', entry, offset };
  }

  #onHeader(block: Uint8Array, offset: number): void {
    // One member's worth of headers starts from the global overrides (1.8.10 copies them per call).
    // Field by field, not a spread: this runs for every member, and a spread of optional fields is slow.
    const global = this.#global;
    const member = (this.#member ??= {
      path: global.path, linkPath: global.linkPath, size: global.size, uid: global.uid, gid: global.gid, mtime: global.mtime,
      xattrs: new Map(), zeroBlockSeen: false, offset: undefined,
    });
    const checksum = verifyChecksum(block);
    if (checksum !== 'ok') {
      // 1.8.10 treats any block with an empty name that is not a valid header
      // as a zero block; two in a row (within one member) end the archive.
      if (block[0] === 0) {
        if (member.zeroBlockSeen) this.#state = { kind: 'finished' };
        member.zeroBlockSeen = true;
        return;
      }
      throw new LayerFormatError(
        checksum === 'unreadable' ? 'tar header checksum field is not an octal number' : 'tar header checksum mismatch',
        { entry: displayName(headerPath(block)), offset },
        { hint: 'the layer tar is damaged or not a tar archive' },
      );
    }
    const typeflag = String.fromCharCode(block[field.typeflag[0]]!);
    if (typeflag === 'V') return this.#onVolumeHeader(block, offset);
    if (!hasUstarMagic(block)) {
      throw new LayerFormatError('tar header has no "ustar" magic (old V7 tar headers are not supported)', {
        entry: displayName(headerPath(block)), offset,
      }, {
        hint: offset === 0 ? 'is the layer compressed with an unsupported algorithm?' : 'the layer tar is damaged',
      });
    }
    member.offset ??= offset;
    const path = member.path ?? (signedTypeflag(block) <= 0x37 ? headerPath(block) : undefined);
    const where = { entry: path ?? headerPath(block), offset };
    const size = member.size ?? this.#number(block, 'size', 0, Number.MAX_SAFE_INTEGER, where);

    const type = ENTRY_TYPES[typeflag];
    if (type !== undefined) return this.#onMember(block, type, path!, size, where);
    switch (typeflag) {
      case 'x':
      case 'g':
      case 'L':
      case 'K':
        return this.#startMetadata(typeflag, size, where);
    }
    this.#warn(`tar member of unsupported type ${JSON.stringify(typeflag)} (0x${block[field.typeflag[0]]!.toString(16)}) ` +
      'skipped, as erofs-utils 1.8.10 skips it', where);
    this.#member = undefined;
    this.#state = size + padding(size) === 0 ? HEADER : {
      kind: 'skip', remaining: size + padding(size), what: 'the data of a skipped member', entry: where.entry, offset,
    };
  }

  /** 1.8.10 records the label and reads on; it does not skip the header's size (it expects none). */
  #onVolumeHeader(block: Uint8Array, offset: number): void {
    if (block[field.size[0]] !== 0) {
      this.#warn('GNU volume header with a non-zero size field; the size is ignored, as erofs-utils 1.8.10 ignores it', {
        entry: cString(block, ...field.name), offset,
      });
    }
    this.#options.onVolumeLabel?.(block.slice(0, 16));
  }

  #startMetadata(kind: Metadata['kind'], size: number, where: { entry: ByteString; offset: number }): void {
    const limit = kind === 'K' ? MAX_LONG_LINK_SIZE : MAX_METADATA_SIZE;
    if (size > limit) {
      throw new LayerFormatError(`${describeMetadata(kind)} of ${size} bytes is larger than the ${limit} bytes allowed`, {
        entry: displayName(where.entry), offset: where.offset,
      });
    }
    const metadata: Metadata = { kind, data: new Uint8Array(size), filled: 0, offset: where.offset, name: where.entry };
    if (size === 0) this.#onMetadata(metadata);
    else this.#state = { kind: 'metadata', metadata };
  }

  #onMetadata({ kind, data, offset, name }: Metadata): void {
    const member = this.#member!;
    switch (kind) {
      case 'x':
        applyPaxRecords(data, member, { offset, entry: member.path ?? name });
        break;
      case 'g':
        // Later members start from the new global values; this member only takes path and linkpath from them.
        applyPaxRecords(data, this.#global, { offset, entry: name });
        if (this.#global.path !== undefined) member.path = this.#global.path;
        if (this.#global.linkPath !== undefined) member.linkPath = this.#global.linkPath;
        break;
      case 'L':
        // Kept as 1.8.10 keeps it: up to the first NUL, trailing slashes NOT removed.
        member.path = cString(data);
        break;
      case 'K':
        member.linkPath = cString(data);
        break;
    }
    this.#state = this.#afterData(padding(data.length), name, offset);
  }

  #onMember(block: Uint8Array, type: TarEntryType, path: ByteString, size: number, where: { entry: ByteString; offset: number }): void {
    const member = this.#member!;
    if (type !== 'file' && size !== 0) {
      // 1.8.10 would not consume these bytes for links and directories (it reads
      // them as the next headers) and would store them as the contents of
      // device nodes and fifos; no tar tool writes such members.
      throw new LayerFormatError(`tar member of type ${type} has a data size of ${size}; only regular files may have data`, {
        entry: displayName(path), offset: where.offset,
      });
    }
    const mode = parseOctal(block, field.mode);
    if (mode === undefined) throw this.#malformed('mode', where);
    if ((mode & S_IFMT) !== 0 && (mode & S_IFMT) !== TYPE_FORMAT_BITS[type]) {
      this.#warn(`mode field 0${(mode >>> 0).toString(8)} has file type bits that disagree with the typeflag; ` +
        'they are ignored, as erofs-utils 1.8.10 ignores them', where);
    }
    const device = type === 'char' || type === 'block';
    const entry: TarEntry = {
      path: path === '' ? '.' : path,
      type,
      mode: mode & 0o7777,
      uid: member.uid ?? this.#number(block, 'uid', 0, MAX_UINT32, where),
      gid: member.gid ?? this.#number(block, 'gid', 0, MAX_UINT32, where),
      mtime: member.mtime ?? this.#number(block, 'mtime', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, where),
      size,
      linkTarget: type === 'hardlink' || type === 'symlink' ? member.linkPath ?? cString(block, ...field.linkname) : undefined,
      devMajor: device ? this.#number(block, 'devmajor', 0, MAX_DEV_MAJOR, where) : 0,
      devMinor: device ? this.#number(block, 'devminor', 0, MAX_DEV_MINOR, where) : 0,
      xattrs: deliveredXattrs(member.xattrs, this.#global.xattrs),
      offset: member.offset!,
    };
    this.#member = undefined;
    this.#state = size === 0 ? HEADER : { kind: 'data', remaining: size, padding: padding(size), entry };
    this.#sink.entry(entry);
  }

  /** A numeric header field in [min, max]; 1.8.10 wraps values outside the C type silently, we refuse them. */
  #number(block: Uint8Array, name: 'size' | 'uid' | 'gid' | 'mtime' | 'devmajor' | 'devminor', min: number, max: number,
    where: { entry: ByteString; offset: number }): number {
    const value = parseNumeric(block, field[name]);
    if (value === undefined) throw this.#malformed(name, where);
    // Compared as doubles: min and max are safe integers, so rounding a huge value cannot move it across them.
    const rounded = Number(value);
    if (rounded < min || rounded > max) {
      throw new LayerFormatError(`tar header ${name} ${value} is outside ${min}..${max}`, {
        entry: displayName(where.entry), offset: where.offset,
      }, { hint: 'the layer tar is damaged, or its writer stored a value no Linux file system can hold' });
    }
    return rounded;
  }

  #malformed(name: string, where: { entry: ByteString; offset: number }): LayerFormatError {
    return new LayerFormatError(`tar header ${name} field is not a valid number`, {
      entry: displayName(where.entry), offset: where.offset,
    }, { hint: 'the layer tar is damaged' });
  }

  #warn(message: string, where: { entry?: ByteString; offset: number }): void {
    this.#options.onWarning?.({ message, ...where });
  }

  /** The error for input that stops before the end-of-archive marker (1.8.10 fails with EIO here, or hangs). */
  #truncation(state: Exclude<State, { kind: 'finished' }>): LayerFormatError {
    const hint = { hint: 'the layer is truncated; fetch it again' };
    switch (state.kind) {
      case 'header':
        if (this.#headerFilled > 0) {
          return new LayerFormatError(`tar archive ends inside a header block (${this.#headerFilled} of ${BLOCK_SIZE} bytes)`,
            { offset: this.#offset - this.#headerFilled }, hint);
        }
        return new LayerFormatError(this.#member?.zeroBlockSeen
          ? 'tar archive ends after a single zero block; the end-of-archive marker is two zero blocks'
          : 'tar archive ends without the end-of-archive marker (two zero blocks)', { offset: this.#offset }, hint);
      case 'data':
        return new LayerFormatError(`tar archive ends inside the data of a member: ${state.remaining} of ${state.entry.size} bytes missing`,
          { entry: displayName(state.entry.path), offset: state.entry.offset }, hint);
      case 'metadata': {
        const { metadata } = state;
        return new LayerFormatError(`tar archive ends inside a ${describeMetadata(metadata.kind)}: ` +
          `${metadata.data.length - metadata.filled} of ${metadata.data.length} bytes missing`,
        { entry: displayName(metadata.name), offset: metadata.offset }, hint);
      }
      case 'skip':
        return new LayerFormatError(`tar archive ends inside ${state.what} (${state.remaining} bytes missing)`,
          state.entry === undefined ? { offset: state.offset } : { entry: displayName(state.entry), offset: state.offset }, hint);
    }
  }
}

/** Feeds a whole stream to a parser; resolves after the sink's end(). */
export async function parseTar(source: AsyncIterable<Uint8Array>, sink: TarSink, options?: TarParserOptions): Promise<void> {
  const parser = new TarParser(sink, options);
  for await (const chunk of source) parser.write(chunk);
  parser.end();
}

function padding(size: number): number {
  return (BLOCK_SIZE - (size % BLOCK_SIZE)) % BLOCK_SIZE;
}

function describeMetadata(kind: Metadata['kind']): string {
  switch (kind) {
    case 'x': return 'PAX extended header';
    case 'g': return 'PAX global header';
    case 'L': return 'GNU long name';
    case 'K': return 'GNU long link name';
  }
}
