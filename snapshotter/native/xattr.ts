/**
 * Extended attributes of a path (never following a final symlink), for
 * turning a directory into a layer image. Names are byte strings (see
 * layer/tar/entry.ts): one byte per char, exactly as the kernel lists them.
 */
import type { ByteString } from '../layer/tar/entry.js';
import { InvalidArgumentError } from '../core/errors.js';
import { callNative, checkString } from './call.js';

/** Names of the attributes on `path`; none where the filesystem has no xattr support. */
export async function listXattrs(path: string): Promise<ByteString[]> {
  checkString(path, 'xattr path');
  try {
    const list = await callNative((native) => native.llistxattr(path));
    return list.toString('latin1').split('\0').filter((name) => name.length > 0);
  } catch (err) {
    if ((err as { errno?: unknown }).errno === 'ENOTSUP') return [];
    throw err;
  }
}

/** The value of attribute `name` on `path`. */
export async function getXattr(path: string, name: ByteString): Promise<Buffer> {
  checkString(path, 'xattr path');
  // The addon takes names as UTF-8 text; a name that is not valid UTF-8 would
  // reach the kernel as different bytes, so it is refused rather than misread.
  const text = Buffer.from(name, 'latin1').toString('utf8');
  if (Buffer.from(text, 'utf8').toString('latin1') !== name) {
    throw new InvalidArgumentError(`xattr name ${JSON.stringify(text)} on ${path} is not valid UTF-8`, {
      hint: 'rename the attribute; only UTF-8 attribute names are supported',
    });
  }
  return callNative((native) => native.lgetxattr(path, text));
}
