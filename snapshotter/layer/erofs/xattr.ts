/**
 * Inline xattr bodies: a 12-byte header (name filter, no shared xattrs) and
 * one 4-byte-aligned entry per xattr, in the order they were set on the
 * inode (erofs_export_xattr_ibody, v1.8.10). Layers never get a shared
 * xattr table: mkfs builds none in tar mode.
 */
import type { ByteString, TarXattr } from '../tar/entry.js';
import { xxh32 } from './checksum.js';
import {
  XATTR_ENTRY,
  XATTR_FILTER_BITS,
  XATTR_FILTER_SEED,
  XATTR_IBODY_HEADER,
  XATTR_INDEX_POSIX_ACL_ACCESS,
  XATTR_INDEX_POSIX_ACL_DEFAULT,
  XATTR_INDEX_SECURITY,
  XATTR_INDEX_TRUSTED,
  XATTR_INDEX_USER,
  writeName,
  writeStruct,
} from './format.js';

export type Xattr = TarXattr;

/** Prefixes that become a name index, in the order mkfs tries them (erofs_xattr_prefix_matches). */
const PREFIXES: ReadonlyArray<readonly [index: number, prefix: ByteString]> = [
  [XATTR_INDEX_USER, 'user.'],
  [XATTR_INDEX_POSIX_ACL_ACCESS, 'system.posix_acl_access'],
  [XATTR_INDEX_POSIX_ACL_DEFAULT, 'system.posix_acl_default'],
  [XATTR_INDEX_TRUSTED, 'trusted.'],
  [XATTR_INDEX_SECURITY, 'security.'],
];

/** An entry's e_name_len and e_value_size are a byte and a 16-bit word. */
export const MAX_XATTR_NAME_SUFFIX = 0xff;
export const MAX_XATTR_VALUE = 0xffff;
/** i_xattr_icount is 16 bits: 1 + (size - 12) / 4 <= 0xffff. */
export const MAX_XATTR_BODY = XATTR_IBODY_HEADER.size + (0xffff - 1) * XATTR_ENTRY.size;

export const OVERLAY_OPAQUE: Xattr = { name: 'trusted.overlay.opaque', value: Uint8Array.of(0x79) };
/** Marks a directory with whiteouts as copied up, so overlayfs does not show them (kernel b79e05aaa166). */
export const OVERLAY_ORIGIN: Xattr = { name: 'trusted.overlay.origin', value: new Uint8Array(0) };

interface SplitName {
  index: number;
  suffix: ByteString;
}

export function splitName(name: ByteString): SplitName {
  for (const [index, prefix] of PREFIXES) {
    if (name.startsWith(prefix)) return { index, suffix: name.slice(prefix.length) };
  }
  return { index: 0, suffix: name };
}

const align4 = (n: number): number => (n + 3) & ~3;

function entrySize(x: Xattr): number {
  return align4(XATTR_ENTRY.size + splitName(x.name).suffix.length + x.value.length);
}

/** Size of the inline body for these xattrs; 0 when there are none. */
export function xattrBodySize(xattrs: readonly Xattr[]): number {
  if (xattrs.length === 0) return 0;
  let size = XATTR_IBODY_HEADER.size;
  for (const x of xattrs) size += entrySize(x);
  return size;
}

/**
 * Bloom-style filter over the names: bit `xxh32(suffix, seed + index) % 32`
 * set for each xattr, stored inverted (a set bit means "not present").
 */
export function nameFilter(xattrs: readonly Xattr[]): number {
  let bits = 0;
  for (const x of xattrs) {
    const { index, suffix } = splitName(x.name);
    bits |= 1 << (xxh32(Buffer.from(suffix, 'latin1'), (XATTR_FILTER_SEED + index) >>> 0) & (XATTR_FILTER_BITS - 1));
  }
  return ~bits >>> 0;
}

/** Writes the body (xattrBodySize bytes) into zeroed memory at `at`. */
export function writeXattrBody(xattrs: readonly Xattr[], into: Uint8Array, at: number): void {
  const view = new DataView(into.buffer, into.byteOffset, into.byteLength);
  writeStruct(view, at, XATTR_IBODY_HEADER, { h_name_filter: nameFilter(xattrs), h_shared_count: 0 });
  let p = at + XATTR_IBODY_HEADER.size;
  for (const x of xattrs) {
    const { index, suffix } = splitName(x.name);
    writeStruct(view, p, XATTR_ENTRY, { e_name_len: suffix.length, e_name_index: index, e_value_size: x.value.length });
    writeName(into, p + XATTR_ENTRY.size, suffix);
    into.set(x.value, p + XATTR_ENTRY.size + suffix.length);
    p += entrySize(x);
  }
}

/** Why an xattr cannot be stored, or undefined when it can. */
export function xattrProblem(x: Xattr): string | undefined {
  const { suffix } = splitName(x.name);
  if (suffix.length > MAX_XATTR_NAME_SUFFIX) return `xattr name ${JSON.stringify(x.name)} is longer than ${MAX_XATTR_NAME_SUFFIX} bytes after its prefix`;
  if (x.value.length > MAX_XATTR_VALUE) return `xattr ${JSON.stringify(x.name)} has a value of ${x.value.length} bytes (at most ${MAX_XATTR_VALUE})`;
  return undefined;
}
