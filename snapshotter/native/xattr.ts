/**
 * Extended attributes of a path (never following a final symlink), for
 * turning a directory into a layer image. Paths may be Buffers and names are
 * byte strings (see layer/tar/entry.ts), so files and attributes whose names
 * are not UTF-8 are read exactly.
 */
import type { ByteString } from '../layer/tar/entry.js';
import { callNative, checkPath } from './call.js';

/** Names of the attributes on `path`; none where the filesystem has no xattr support. */
export async function listXattrs(path: string | Buffer): Promise<ByteString[]> {
  checkPath(path, 'xattr path');
  try {
    const list = await callNative((native) => native.llistxattr(path));
    return list.toString('latin1').split('\0').filter((name) => name.length > 0);
  } catch (err) {
    if ((err as { errno?: unknown }).errno === 'ENOTSUP') return [];
    throw err;
  }
}

/** The value of attribute `name` on `path`. */
export async function getXattr(path: string | Buffer, name: ByteString): Promise<Buffer> {
  checkPath(path, 'xattr path');
  const rawName = Buffer.from(name, 'latin1');
  checkPath(rawName, 'xattr name');
  return callNative((native) => native.lgetxattr(path, rawName));
}
