/**
 * PAX extended header records ("LEN KEY=VALUE\n"), read the way erofs-utils
 * 1.8.10 reads them (`tarerofs_parse_pax_header`, `tarerofs_insert_xattr`,
 * its base64 and URL decoders). Keys other than the ones below are ignored,
 * as 1.8.10 ignores them.
 */
import { LayerFormatError } from '../../core/errors.js';
import { displayName, type ByteString } from './entry.js';
import { isCSpace, latin1, stripTrailingSlashes } from './header.js';

/**
 * What extended headers override for the next member (`x`) or for all later
 * members (`g`): the fields of 1.8.10's `struct erofs_pax_header`.
 */
export interface PaxOverrides {
  path?: ByteString;
  linkPath?: ByteString;
  size?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /**
   * Insertion-ordered like 1.8.10's xattr list: a repeated name keeps its first
   * position and takes the last value. Names may be empty here; 1.8.10 skips
   * those when it applies the list (see `deliveredXattrs`).
   */
  xattrs: Map<ByteString, Uint8Array>;
}

export interface PaxWhere {
  /** Offset of the extended header block. */
  offset: number;
  entry?: ByteString;
}

const MAX_UINT32 = 0xffffffff;
const NEWLINE = 0x0a;
const EQUALS = 0x3d;

/** Applies the records in `data` (one extended header's data) to `into`, in record order. */
export function applyPaxRecords(data: Uint8Array, into: PaxOverrides, where: PaxWhere): void {
  const bad = (message: string): LayerFormatError => new LayerFormatError(message, located(where), {
    hint: 'the PAX extended header is malformed; recreate the layer with a standard tar writer',
  });
  let p = 0;
  while (p < data.length) {
    // "%d %n": blanks, a decimal number, blanks; the length counts from p.
    const length = scanInteger(data, p, data.length);
    if (length === undefined) throw bad(`PAX record at byte ${p} of the extended header has no length`);
    const recordLength = Number(BigInt.asIntN(32, length.value));
    const keyStart = skipBlanks(data, length.next, data.length);
    if (recordLength <= keyStart - p || recordLength > data.length - p) {
      throw bad(`PAX record at byte ${p} of the extended header has a bad length ${recordLength}`);
    }
    const end = p + recordLength;
    if (data[end - 1] !== NEWLINE) throw bad(`PAX record at byte ${p} of the extended header does not end with a newline`);
    const keyValue = data.subarray(keyStart, end - 1);
    const equals = keyValue.indexOf(EQUALS);
    if (equals < 0) throw bad(`PAX record at byte ${p} of the extended header has no '='`);
    applyRecord(keyValue.subarray(0, equals), keyValue.subarray(equals + 1), into, bad);
    p = end;
  }
}

type Bad = (message: string) => LayerFormatError;

function applyRecord(key: Uint8Array, value: Uint8Array, into: PaxOverrides, bad: Bad): void {
  const name = latin1(key, 0, key.length);
  switch (name) {
    case 'path':
      into.path = stripTrailingSlashes(textValue(name, value, bad));
      return;
    case 'linkpath':
      into.linkPath = textValue(name, value, bad);
      return;
    case 'mtime':
      into.mtime = parseMtime(value, bad);
      return;
    case 'size': {
      const size = wholeNumber(name, value, bad);
      if (size < 0n || size > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`PAX size ${size} is out of range`);
      into.size = Number(size);
      return;
    }
    case 'uid':
    case 'gid': {
      const id = wholeNumber(name, value, bad);
      if (id < 0n || id > BigInt(MAX_UINT32)) throw bad(`PAX ${name} ${id} is outside 0..${MAX_UINT32}`);
      into[name] = Number(id);
      return;
    }
  }
  if (name.startsWith(SCHILY_XATTR)) {
    setXattr(into, name.slice(SCHILY_XATTR.length), value.slice(), bad);
  } else if (name.startsWith(LIBARCHIVE_XATTR)) {
    const decodedName = urlDecode(key.subarray(LIBARCHIVE_XATTR.length));
    const decoded = decodeBase64AsErofs(value);
    if (decoded === undefined) {
      throw bad(`PAX record ${JSON.stringify(displayName(name))} has a value erofs-utils 1.8.10 cannot decode ` +
        '(it reads base64 with its own bit order and refuses padded values whose last bits are not zero)');
    }
    setXattr(into, latin1(decodedName, 0, decodedName.length), decoded, bad);
  }
}

const SCHILY_XATTR = 'SCHILY.xattr.';
const LIBARCHIVE_XATTR = 'LIBARCHIVE.xattr.';

function setXattr(into: PaxOverrides, name: ByteString, value: Uint8Array, bad: Bad): void {
  // 1.8.10 would cut the name at the NUL and set a different attribute.
  if (name.includes('\0')) throw bad(`PAX xattr name ${JSON.stringify(displayName(name))} contains a NUL byte`);
  into.xattrs.set(name, value);
}

/** path and linkpath: 1.8.10 strdup()s them, so a NUL would silently cut the name. */
function textValue(key: string, value: Uint8Array, bad: Bad): ByteString {
  if (value.includes(0)) throw bad(`PAX ${key} contains a NUL byte`);
  return latin1(value, 0, value.length);
}

/** size, uid, gid: "%lld %n" and nothing after the number (a NUL ends the C string). */
function wholeNumber(key: string, value: Uint8Array, bad: Bad): bigint {
  const number = scanInteger(value, 0, value.length);
  if (number === undefined) throw bad(`PAX ${key} is not a decimal number`);
  const rest = skipBlanks(value, number.next, value.length);
  if (rest < value.length && value[rest] !== 0) throw bad(`PAX ${key} has trailing characters`);
  return number.value;
}

/**
 * mtime: "%lld %n", then "%d" after a '.' for the fraction. 1.8.10 keeps the
 * fraction as nanoseconds; the tar entry carries whole seconds (the fraction is
 * still checked, because 1.8.10 fails on a '.' without digits). Anything else
 * after the seconds is ignored, as 1.8.10 ignores it.
 */
function parseMtime(value: Uint8Array, bad: Bad): number {
  const seconds = scanInteger(value, 0, value.length);
  if (seconds === undefined) throw bad('PAX mtime is not a decimal number');
  const rest = skipBlanks(value, seconds.next, value.length);
  if (rest < value.length && value[rest] === 0x2e && scanInteger(value, rest + 1, value.length) === undefined) {
    throw bad('PAX mtime has a malformed fraction');
  }
  if (seconds.value < BigInt(Number.MIN_SAFE_INTEGER) || seconds.value > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw bad(`PAX mtime ${seconds.value} is out of range`);
  }
  return Number(seconds.value);
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

/**
 * scanf's "%lld"/"%d" over a C string that ends at `end` or at a NUL: blanks,
 * an optional sign, decimal digits; clamped to the 64-bit range like strtoll.
 */
function scanInteger(bytes: Uint8Array, start: number, end: number): { value: bigint; next: number } | undefined {
  let i = skipBlanks(bytes, start, end);
  let negative = false;
  if (i < end && (bytes[i] === 0x2b || bytes[i] === 0x2d)) {
    negative = bytes[i] === 0x2d;
    i++;
  }
  const digits = i;
  while (i < end && bytes[i]! >= 0x30 && bytes[i]! <= 0x39) i++;
  if (i === digits) return undefined;
  let value = BigInt(latin1(bytes, digits, i));
  if (negative) value = -value;
  return { value: value > INT64_MAX ? INT64_MAX : value < INT64_MIN ? INT64_MIN : value, next: i };
}

function skipBlanks(bytes: Uint8Array, start: number, end: number): number {
  let i = start;
  while (i < end && isCSpace(bytes[i]!)) i++;
  return i;
}

/**
 * 1.8.10's `url_decode`: "%XY" with two hex digits becomes one byte, anything
 * else is copied. (1.8.10 also stops at a NUL; a NUL is copied here so that
 * setXattr refuses the name.)
 */
export function urlDecode(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(bytes.length);
  let o = 0;
  for (let i = 0; i < bytes.length;) {
    if (bytes[i] === 0x25 && bytes.length - i > 2) {
      const high = hexValue(bytes[i + 1]!);
      const low = hexValue(bytes[i + 2]!);
      if (high >= 0 && low >= 0) {
        out[o++] = (high << 4) | low;
        i += 3;
        continue;
      }
    }
    out[o++] = bytes[i++]!;
  }
  return out.subarray(0, o);
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x41 && byte <= 0x46) return byte - 0x41 + 10;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const BASE64_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < BASE64_ALPHABET.length; i++) BASE64_VALUE[BASE64_ALPHABET.charCodeAt(i)] = i;

/**
 * LIBARCHIVE.xattr values as erofs-utils 1.8.10 decodes them, which is not
 * standard base64: each 6-bit digit is added ABOVE the bits already collected
 * (least significant first) and bytes are taken from the bottom. A length that
 * is a multiple of four loses one or two trailing '=' and counts as padded.
 * Leftover bits that are not zero fail a padded value and become one more byte
 * of an unpadded one. So standard-base64 values of 3n bytes decode to other
 * bytes, and most padded values fail (mkfs.erofs exits with EFSCORRUPTED).
 *
 * We must produce the bytes 1.8.10 produces wherever it succeeds (or root
 * hashes would differ), and refuse where it fails: hence this reproduction
 * instead of a correct decoder. Returns undefined where 1.8.10 fails.
 */
export function decodeBase64AsErofs(text: Uint8Array): Uint8Array | undefined {
  let length = text.length;
  let padded = false;
  if (length > 0 && length % 4 === 0) {
    if (text[length - 2] === EQUALS && text[length - 1] === EQUALS) length -= 2;
    else if (text[length - 1] === EQUALS) length -= 1;
    padded = true;
  }
  const out = new Uint8Array(Math.floor((length * 6) / 8) + 1);
  let o = 0;
  let bits = 0;
  let accumulator = 0;
  for (let i = 0; i < length; i++) {
    const digit = BASE64_VALUE[text[i]!]!;
    if (digit < 0) return undefined;
    accumulator += digit << bits;
    bits += 6;
    if (bits >= 8) {
      out[o++] = accumulator & 0xff;
      accumulator >>= 8;
      bits -= 8;
    }
  }
  if (accumulator !== 0) {
    if (padded) return undefined;
    out[o++] = accumulator;
  }
  return out.subarray(0, o);
}

/**
 * The xattrs 1.8.10 sets on a member (`tarerofs_merge_xattrs` then
 * `tarerofs_apply_xattrs`): the member's own records in list order, then the
 * global ones whose names the member did not set, in global list order.
 * Empty names are skipped, as 1.8.10's apply loop skips them.
 */
export function deliveredXattrs(
  own: Map<ByteString, Uint8Array>,
  global: Map<ByteString, Uint8Array>,
): { name: ByteString; value: Uint8Array }[] {
  const result: { name: ByteString; value: Uint8Array }[] = [];
  for (const [name, value] of own) if (name !== '') result.push({ name, value });
  for (const [name, value] of global) if (name !== '' && !own.has(name)) result.push({ name, value });
  return result;
}

function located(where: PaxWhere): { entry?: string; offset: number } {
  return where.entry === undefined ? { offset: where.offset } : { entry: displayName(where.entry), offset: where.offset };
}
