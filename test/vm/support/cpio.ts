/**
 * A writer for the "newc" cpio format, the only archive format the kernel
 * unpacks into its initramfs (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Each member is a 110-byte ASCII header of 13 eight-digit hex fields, the
 * NUL-terminated name, padding to 4 bytes, the data, padding to 4 bytes; the
 * archive ends with a member named TRAILER!!!.
 */

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const MAGIC = '070701';
const TRAILER = 'TRAILER!!!';

/**
 * The archive for `entries`, in the given order (parents before children: the
 * kernel creates members as it reads them). Owner root, mtime 0, so equal
 * inputs give equal bytes.
 */
export function writeNewcCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  for (const entry of entries) {
    const path = entry.path.replace(/^\/+/, '');
    if (path === '' || path.split('/').includes('..')) throw new Error(`cpio: bad member path ${JSON.stringify(entry.path)}`);
    const { mode, data, rdev } = describe(entry);
    parts.push(member(path, { ino: ino++, mode, nlink: entry.type === 'dir' ? 2 : 1, data, rdev }));
  }
  parts.push(member(TRAILER, { ino: 0, mode: 0, nlink: 1, data: new Uint8Array(0), rdev: [0, 0] }));
  return Buffer.concat(parts);
}

function describe(entry: CpioEntry): { mode: number; data: Uint8Array; rdev: [number, number] } {
  switch (entry.type) {
    case 'dir':
      return { mode: S_IFDIR | (entry.mode ?? 0o755), data: new Uint8Array(0), rdev: [0, 0] };
    case 'file':
      return { mode: S_IFREG | (entry.mode ?? 0o644), data: entry.data, rdev: [0, 0] };
    case 'symlink':
      return { mode: S_IFLNK | 0o777, data: Buffer.from(entry.target), rdev: [0, 0] };
    case 'chardev':
      return { mode: S_IFCHR | (entry.mode ?? 0o600), data: new Uint8Array(0), rdev: [entry.major, entry.minor] };
  }
}

function member(
  name: string,
  m: { ino: number; mode: number; nlink: number; data: Uint8Array; rdev: [number, number] },
): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const fields = [m.ino, m.mode, 0, 0, m.nlink, 0, m.data.length, 0, 0, m.rdev[0], m.rdev[1], nameBytes.length, 0];
  const header = Buffer.from(MAGIC + fields.map((v) => v.toString(16).padStart(8, '0')).join(''), 'ascii');
  return Buffer.concat([header, nameBytes, pad(header.length + nameBytes.length), m.data, pad(m.data.length)]);
}

function pad(length: number): Buffer {
  return Buffer.alloc((4 - (length % 4)) % 4);
}
