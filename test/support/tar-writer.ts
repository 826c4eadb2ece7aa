/**
 * A tar writer for tests: ustar headers (POSIX or GNU magic), PAX extended
 * headers (long names and link targets, SCHILY.xattr.*, big numbers,
 * fractional mtimes, any extra record), GNU 'L'/'K' long names, base-256
 * numbers, every member type, global headers, volume headers, raw blocks, and
 * ways to break an archive on purpose. Deterministic: the same calls give the
 * same bytes.
 *
 *   const tar = new TarBuilder();
 *   tar.add({ path: 'etc', type: 'directory' });
 *   tar.add({ path: 'etc/hosts', data: '127.0.0.1 localhost\n', xattrs: [['user.a', 'b']] });
 *   const bytes = tar.finish();
 */
export const BLOCK = 512;

export type MemberType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';
/** Text is written as UTF-8; pass bytes for anything else. */
export type Bytes = string | Uint8Array;
export type NumericField = 'mode' | 'uid' | 'gid' | 'size' | 'mtime' | 'devmajor' | 'devminor';

export interface TarMember {
  path: Bytes;
  type?: MemberType;
  /** Regular file contents. */
  data?: Bytes;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkTarget?: Bytes;
  devMajor?: number;
  devMinor?: number;
  uname?: string;
  gname?: string;
  /** SCHILY.xattr.<name> records, in this order. */
  xattrs?: [name: Bytes, value: Bytes][];
  /** Extra PAX records, written after the ones the writer adds itself. */
  pax?: [key: Bytes, value: Bytes][];
  /** PAX mtime record text, e.g. '1600000000.123456789'. */
  paxMtime?: string;
  /** How names and link targets over 100 bytes are stored (default 'pax'); 'prefix' uses the ustar prefix field. */
  longNames?: 'pax' | 'gnu' | 'prefix';
  /** Fields written as GNU base-256 numbers (otherwise values too big for octal go to PAX records). */
  base256?: NumericField[];
  /** Header magic: POSIX "ustar\0" "00" (default) or GNU "ustar  \0". */
  magic?: 'posix' | 'gnu';
  /** Raw typeflag, overriding the one `type` gives (e.g. '\0', 'D', 'S'). */
  typeflag?: string;
  /** A wrong value in the main header's checksum field. */
  badChecksum?: boolean;
}

/** Fields of one raw header block; names, magic and numbers as the caller wants them. */
export interface HeaderFields {
  name: Bytes;
  typeflag: string;
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  mtime?: number;
  linkname?: Bytes;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
  prefix?: Bytes;
  magic?: 'posix' | 'gnu' | 'none';
  base256?: NumericField[];
  /** Stored instead of the computed checksum. */
  checksum?: number;
}

const TYPEFLAGS: Record<MemberType, string> = {
  file: '0', hardlink: '1', symlink: '2', char: '3', block: '4', directory: '5', fifo: '6',
};
const DEFAULT_MODES: Record<MemberType, number> = {
  file: 0o644, hardlink: 0o644, symlink: 0o777, char: 0o600, block: 0o600, directory: 0o755, fifo: 0o644,
};
const FIELD_AT: Record<NumericField, [number, number]> = {
  mode: [100, 8], uid: [108, 8], gid: [116, 8], size: [124, 12], mtime: [136, 12], devmajor: [329, 8], devminor: [337, 8],
};

export function bytes(value: Bytes): Uint8Array {
  return typeof value === 'string' ? new TextEncoder().encode(value) : value;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function padToBlock(data: Uint8Array): Uint8Array {
  const rest = data.length % BLOCK;
  return rest === 0 ? data : concat([data, new Uint8Array(BLOCK - rest)]);
}

/** Largest value an octal field of `length` bytes holds (length-1 digits and a NUL). */
export function maxOctal(length: number): number {
  return 8 ** (length - 1) - 1;
}

/** One 512-byte header block. Numbers are octal unless listed in `base256`; the checksum is computed unless given. */
export function tarHeader(fields: HeaderFields): Uint8Array {
  const block = new Uint8Array(BLOCK);
  putBytes(block, 0, 100, bytes(fields.name));
  const numbers: Record<NumericField, number> = {
    mode: fields.mode ?? 0o644, uid: fields.uid ?? 0, gid: fields.gid ?? 0, size: fields.size ?? 0,
    mtime: fields.mtime ?? 0, devmajor: fields.devmajor ?? 0, devminor: fields.devminor ?? 0,
  };
  for (const [name, [offset, length]] of Object.entries(FIELD_AT) as [NumericField, [number, number]][]) {
    block.set(fields.base256?.includes(name) ? base256(numbers[name], length) : octal(numbers[name], length), offset);
  }
  block[156] = fields.typeflag.charCodeAt(0) & 0xff;
  putBytes(block, 157, 100, bytes(fields.linkname ?? ''));
  if (fields.magic !== 'none') putBytes(block, 257, 8, bytes(fields.magic === 'gnu' ? 'ustar  \0' : 'ustar\x0000'));
  putBytes(block, 265, 32, bytes(fields.uname ?? ''));
  putBytes(block, 297, 32, bytes(fields.gname ?? ''));
  putBytes(block, 345, 155, bytes(fields.prefix ?? ''));
  writeChecksum(block, fields.checksum);
  return block;
}

/** Stores the checksum (computed over the block with the field as spaces, unless `value` is given). */
export function writeChecksum(block: Uint8Array, value?: number): void {
  block.fill(0x20, 148, 156);
  const sum = value ?? block.subarray(0, BLOCK).reduce((total, byte) => total + byte, 0);
  putBytes(block, 148, 8, bytes(`${sum.toString(8).padStart(6, '0')}\0 `));
}

export function octal(value: number, length: number): Uint8Array {
  if (!Number.isInteger(value) || value < 0 || value > maxOctal(length)) {
    throw new RangeError(`${value} does not fit an octal field of ${length} bytes`);
  }
  return bytes(`${value.toString(8).padStart(length - 1, '0')}\0`);
}

/** GNU base-256: 0x80 then the value big-endian (0xff and two's complement when negative). */
export function base256(value: number | bigint, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let rest = BigInt.asUintN(8 * length, BigInt(value));
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  out[0] = BigInt(value) < 0n ? 0xff : 0x80;
  return out;
}

/** "LEN KEY=VALUE\n", where LEN counts its own digits. */
export function paxRecord(key: Bytes, value: Bytes): Uint8Array {
  const body = concat([bytes(' '), bytes(key), bytes('='), bytes(value), bytes('\n')]);
  let length = body.length + 1;
  while (String(length).length + body.length !== length) length = String(length).length + body.length;
  return concat([bytes(String(length)), body]);
}

/** An extended header ('x', or 'g' for global) with its data, padded. */
export function paxHeader(records: Uint8Array[], options: { global?: boolean; name?: Bytes; size?: number } = {}): Uint8Array {
  const data = concat(records);
  return concat([
    tarHeader({ name: options.name ?? 'PaxHeaders/member', typeflag: options.global ? 'g' : 'x', size: options.size ?? data.length }),
    padToBlock(data),
  ]);
}

/** A GNU long name ('L') or long link ('K') header with the NUL-terminated name, padded. */
export function gnuLongHeader(kind: 'L' | 'K', name: Bytes): Uint8Array {
  const data = concat([bytes(name), new Uint8Array(1)]);
  return concat([
    tarHeader({ name: '././@LongLink', typeflag: kind, size: data.length, magic: 'gnu' }),
    padToBlock(data),
  ]);
}

/** All blocks of one member: extended headers, the header, and the padded data. */
export function memberBlocks(member: TarMember): Uint8Array {
  const type = member.type ?? 'file';
  const data = type === 'file' ? bytes(member.data ?? '') : new Uint8Array(0);
  const path = bytes(member.path);
  const link = bytes(member.linkTarget ?? '');
  const base = new Set(member.base256 ?? []);
  const records: Uint8Array[] = [];
  const longNames: Uint8Array[] = [];
  const header: HeaderFields = {
    name: path, typeflag: member.typeflag ?? TYPEFLAGS[type], mode: member.mode ?? DEFAULT_MODES[type],
    uid: member.uid ?? 0, gid: member.gid ?? 0, size: data.length, mtime: member.mtime ?? 0, linkname: link,
    uname: member.uname ?? '', gname: member.gname ?? '', devmajor: member.devMajor ?? 0, devminor: member.devMinor ?? 0,
    magic: member.magic ?? 'posix', base256: [...base],
  };
  if (path.length > 100) {
    if (member.longNames === 'prefix') {
      [header.prefix, header.name] = splitPrefix(path);
    } else if (member.longNames === 'gnu') {
      longNames.push(gnuLongHeader('L', path));
      header.name = path.subarray(0, 100);
    } else {
      records.push(paxRecord('path', path));
      header.name = path.subarray(0, 100);
    }
  }
  if (link.length > 100) {
    if (member.longNames === 'gnu') longNames.push(gnuLongHeader('K', link));
    else records.push(paxRecord('linkpath', link));
    header.linkname = link.subarray(0, 100);
  }
  for (const name of ['uid', 'gid', 'size', 'mtime'] as const) {
    const value = header[name]!;
    if (!base.has(name) && (value < 0 || value > maxOctal(FIELD_AT[name][1]))) {
      records.push(paxRecord(name, String(value)));
      header[name] = 0;
    }
  }
  if (member.paxMtime !== undefined) records.push(paxRecord('mtime', member.paxMtime));
  for (const [name, value] of member.xattrs ?? []) records.push(paxRecord(concat([bytes('SCHILY.xattr.'), bytes(name)]), value));
  for (const [key, value] of member.pax ?? []) records.push(paxRecord(key, value));
  const main = tarHeader(header);
  if (member.badChecksum) main[148] = main[148] === 0x37 ? 0x36 : 0x37;
  return concat([
    ...(records.length ? [paxHeader(records, { name: concat([bytes('PaxHeaders/'), lastComponent(path)]) })] : []),
    ...longNames,
    main,
    padToBlock(data),
  ]);
}

/** Builds an archive member by member and remembers where each piece starts. */
export class TarBuilder {
  readonly #parts: Uint8Array[] = [];
  #length = 0;

  /** Appends a member; returns the offset of its first header. */
  add(member: TarMember): number {
    return this.raw(memberBlocks(member));
  }

  /** Appends a global extended header ('g') with these records. */
  global(records: [key: Bytes, value: Bytes][]): number {
    return this.raw(paxHeader(records.map(([key, value]) => paxRecord(key, value)), { global: true, name: 'GlobalHead.0' }));
  }

  /** Appends a GNU volume header ('V'), with the size field all NUL as GNU tar writes it. */
  volume(label: Bytes): number {
    const header = tarHeader({ name: label, typeflag: 'V', magic: 'gnu' });
    header.fill(0, 124, 136);
    writeChecksum(header);
    return this.raw(header);
  }

  /** Appends bytes as they are (hand-made headers, garbage, single zero blocks). */
  raw(block: Uint8Array): number {
    const offset = this.#length;
    this.#parts.push(block);
    this.#length += block.length;
    return offset;
  }

  /** Bytes so far. */
  get length(): number {
    return this.#length;
  }

  /** The archive: what was added, `endBlocks` zero blocks (default 2), then `trailing` bytes. */
  finish(options: { endBlocks?: number; trailing?: Uint8Array } = {}): Uint8Array {
    return concat([...this.#parts, new Uint8Array(BLOCK * (options.endBlocks ?? 2)), options.trailing ?? new Uint8Array(0)]);
  }
}

export function tar(members: TarMember[], options?: { endBlocks?: number; trailing?: Uint8Array }): Uint8Array {
  const builder = new TarBuilder();
  for (const member of members) builder.add(member);
  return builder.finish(options);
}

/**
 * A copy of `archive` with a field of the header at `offset` replaced; the
 * checksum is recomputed unless `keepChecksum` (so the damage is in the field only).
 */
export function patchHeader(archive: Uint8Array, offset: number, at: number, value: Bytes | number[], options: { keepChecksum?: boolean } = {}): Uint8Array {
  const copy = archive.slice();
  copy.set(Array.isArray(value) ? value : bytes(value), offset + at);
  if (!options.keepChecksum) writeChecksum(copy.subarray(offset, offset + BLOCK));
  return copy;
}

/** `.wh.<name>`: an OCI whiteout for `path`. */
export function whiteout(path: string): string {
  const slash = path.lastIndexOf('/');
  return `${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`;
}

/** `<dir>/.wh..wh..opq`: an OCI opaque-directory marker. */
export function opaqueMarker(directory: string): string {
  return `${directory}/.wh..wh..opq`;
}

function splitPrefix(path: Uint8Array): [Uint8Array, Uint8Array] {
  for (let i = Math.min(path.length - 1, 155); i > 0; i--) {
    if (path[i] === 0x2f && path.length - i - 1 <= 100 && path.length - i - 1 > 0) return [path.subarray(0, i), path.subarray(i + 1)];
  }
  throw new RangeError('path cannot be split into a ustar prefix and name');
}

function lastComponent(path: Uint8Array): Uint8Array {
  let end = path.length;
  while (end > 0 && path[end - 1] === 0x2f) end--;
  if (end === 0) return bytes('root');
  const start = path.lastIndexOf(0x2f, end - 1) + 1;
  return path.subarray(start, Math.min(end, start + 80));
}

function putBytes(block: Uint8Array, offset: number, length: number, value: Uint8Array): void {
  if (value.length > length) throw new RangeError(`${value.length} bytes do not fit a field of ${length}`);
  block.set(value, offset);
}
