/**
 * The 512-byte ustar header block (POSIX ustar and the GNU variant) and how
 * erofs-utils 1.8.10 reads its fields (`lib/tar.c`: `struct tar_header`,
 * `tarerofs_otoi`, `tarerofs_parsenum`, the checksum loop and the
 * prefix/name join in `tarerofs_parse_tar`). Pure functions over one block.
 */
import type { ByteString } from './entry.js';

export const BLOCK_SIZE = 512;

/** Field offsets and lengths in the header block. */
export const field = {
  name: [0, 100],
  mode: [100, 8],
  uid: [108, 8],
  gid: [116, 8],
  size: [124, 12],
  mtime: [136, 12],
  checksum: [148, 8],
  typeflag: [156, 1],
  linkname: [157, 100],
  magic: [257, 6],
  devmajor: [329, 8],
  devminor: [337, 8],
  prefix: [345, 155],
} as const satisfies Record<string, readonly [number, number]>;

export type FieldName = keyof typeof field;

const SPACE = 0x20;
const SLASH = 0x2f;

/** isspace() in the C locale: what strtoll and scanf skip. */
export function isCSpace(byte: number): boolean {
  return byte === SPACE || (byte >= 0x09 && byte <= 0x0d);
}

/** Bytes up to the first NUL (or the end), as C string functions see them. */
export function cString(bytes: Uint8Array, start = 0, length = bytes.length - start): ByteString {
  const end = start + length;
  let stop = start;
  while (stop < end && bytes[stop] !== 0) stop++;
  return latin1(bytes, start, stop);
}

export function latin1(bytes: Uint8Array, start: number, end: number): ByteString {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

/**
 * An octal field as `tarerofs_otoi` reads it: strtoll(base 8) over the field
 * copied into a NUL-terminated buffer. Leading blanks and a sign are allowed;
 * the digits must end at a NUL or a space. A field of leading spaces alone is 0
 * (strtoll converts nothing and stops on a space). `undefined` where 1.8.10 sets
 * errno. At most 12 digits, so the value is always exact.
 */
export function parseOctal(block: Uint8Array, [offset, length]: readonly [number, number]): number | undefined {
  const end = offset + length;
  let i = offset;
  while (i < end && isCSpace(block[i]!)) i++;
  let negative = false;
  if (i < end && (block[i] === 0x2b || block[i] === 0x2d)) {
    negative = block[i] === 0x2d;
    i++;
  }
  const digits = i;
  let value = 0;
  while (i < end && block[i]! >= 0x30 && block[i]! <= 0x37) {
    value = value * 8 + (block[i]! - 0x30);
    i++;
  }
  if (i === digits) return block[offset] === SPACE ? 0 : undefined;
  const stop = i < end ? block[i] : 0;
  if (stop !== 0 && stop !== SPACE) return undefined;
  return negative ? -value : value;
}

/**
 * A numeric field as `tarerofs_parsenum` reads it: GNU base-256 when the first
 * byte is 0x80 or 0xff (the remaining bytes big-endian, the first byte dropped,
 * the sum kept in a 64-bit signed integer), octal otherwise.
 */
export function parseNumeric(block: Uint8Array, f: readonly [number, number]): bigint | undefined {
  const [offset, length] = f;
  const first = block[offset];
  if (first === 0x80 || first === 0xff) {
    let value = 0n;
    for (let i = offset + 1; i < offset + length; i++) value = (value << 8n) | BigInt(block[i]!);
    return BigInt.asIntN(64, value);
  }
  const value = parseOctal(block, f);
  return value === undefined ? undefined : BigInt(value);
}

export type ChecksumResult = 'ok' | 'unreadable' | 'mismatch';

/**
 * 1.8.10 accepts the stored checksum if it equals either the unsigned or the
 * signed byte sum (old tars summed signed chars). It sums bytes 0..499 with the
 * checksum field counted as spaces; the 12 padding bytes are not summed.
 * Sums and stored value are compared as 32-bit unsigned, as the C code does.
 */
export function verifyChecksum(block: Uint8Array): ChecksumResult {
  const stored = parseOctal(block, field.checksum);
  if (stored === undefined) return 'unreadable';
  let unsigned = 8 * SPACE;
  let signed = 8 * SPACE;
  for (let i = 0; i < 500; i++) {
    if (i === 148) i = 156;
    const byte = block[i]!;
    unsigned += byte;
    signed += byte < 0x80 ? byte : byte - 0x100;
  }
  const value = stored >>> 0;
  return value === unsigned >>> 0 || value === signed >>> 0 ? 'ok' : 'mismatch';
}

/** Only the first five bytes are compared, so "ustar\0" + "00" and GNU "ustar  \0" both pass. */
export function hasUstarMagic(block: Uint8Array): boolean {
  const [offset] = field.magic;
  return block[offset] === 0x75 && block[offset + 1] === 0x73 && block[offset + 2] === 0x74 &&
    block[offset + 3] === 0x61 && block[offset + 4] === 0x72;
}

/**
 * The member path from the ustar fields: prefix, a '/' unless the prefix ends
 * with one, then name; trailing slashes removed; '.' when nothing is left.
 * (1.8.10 joins a non-empty prefix for GNU headers too, where that area holds
 * other data; GNU tar leaves it zeroed.)
 */
export function headerPath(block: Uint8Array): ByteString {
  const prefix = cString(block, ...field.prefix);
  const name = cString(block, ...field.name);
  const joined = prefix === '' ? name : prefix.charCodeAt(prefix.length - 1) === SLASH ? prefix + name : `${prefix}/${name}`;
  return stripTrailingSlashes(joined) || '.';
}

export function stripTrailingSlashes(path: ByteString): ByteString {
  let end = path.length;
  while (end > 0 && path.charCodeAt(end - 1) === SLASH) end--;
  return end === path.length ? path : path.slice(0, end);
}

/** The typeflag as a C `char` on x86: bytes >= 0x80 are negative. */
export function signedTypeflag(block: Uint8Array): number {
  const byte = block[field.typeflag[0]]!;
  return byte < 0x80 ? byte : byte - 0x100;
}
