/**
 * The xattrs of a file being committed, read through the native addon
 * (llistxattr/lgetxattr: a symlink's own attributes, never its target's).
 * Paths go to the kernel as raw bytes, so names need not be UTF-8.
 */
import { getXattr, listXattrs } from '../../native/index.js';
import type { XattrReader } from './dir-source.js';

export const readXattrs: XattrReader = async (absolute) => {
  const names = await listXattrs(absolute);
  return Promise.all(names.map(async (name) => ({ name, value: await getXattr(absolute, name) })));
};
