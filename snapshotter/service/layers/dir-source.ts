/**
 * An overlay upper directory as a stream of tar records, for the EROFS
 * builder (a TarSink): what Commit turns into a layer. Overlay's own marks
 * stay as overlay reads them in a lower layer: a whiteout is a character
 * device 0:0, an opaque directory has `trusted.overlay.opaque`. Overlay's other
 * bookkeeping xattrs (origin, impure, redirect, ...) describe this upper dir's
 * history and are dropped.
 *
 * Order: a directory before its entries, entries in byte order of their
 * names; the first path of a hard-linked inode carries the data, later paths
 * are `hardlink` records naming it. Sockets cannot be in a layer and are skipped.
 */
import type { BigIntStats } from 'node:fs';
import { lstat, open, readdir, readlink } from 'node:fs/promises';
import { FailedPreconditionError } from '../../core/errors.js';
import type { ByteString, TarEntry, TarEntryType, TarSink, TarXattr } from '../../layer/tar/entry.js';

/** The xattrs of one file (not following symlinks). */
export type XattrReader = (absolutePath: Buffer, path: ByteString) => Promise<TarXattr[]>;

export interface DirectoryWalk {
  /** Distinct inodes in the tree, the root included. */
  inodes: number;
}

export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';
const OVERLAY_PRIVATE_PREFIX = 'trusted.overlay.';
const READ_CHUNK_BYTES = 1 << 20;

export async function feedDirectory(root: string, sink: TarSink, xattrsOf: XattrReader): Promise<DirectoryWalk> {
  const firstPath = new Map<string, ByteString>();
  const rootPath = Buffer.from(root);

  async function visit(absolute: Buffer, path: ByteString): Promise<void> {
    const st = await lstat(absolute, { bigint: true });
    const type = entryType(st, absolute);
    if (type === undefined) return;
    const inode = `${st.dev}:${st.ino}`;
    const linkTarget = type === 'file' && st.nlink > 1n ? firstPath.get(inode) : undefined;
    if (!firstPath.has(inode)) firstPath.set(inode, path);
    const isHardlink = linkTarget !== undefined;
    const entry: TarEntry = {
      path,
      type: isHardlink ? 'hardlink' : type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs / 1_000_000_000n),
      size: type === 'file' && !isHardlink ? Number(st.size) : 0,
      linkTarget: isHardlink ? linkTarget : type === 'symlink' ? (await readlink(absolute, { encoding: 'buffer' })).toString('latin1') : undefined,
      devMajor: type === 'char' || type === 'block' ? deviceMajor(st.rdev) : 0,
      devMinor: type === 'char' || type === 'block' ? deviceMinor(st.rdev) : 0,
      xattrs: isHardlink ? [] : layerXattrs(await xattrsOf(absolute, path)),
      offset: 0,
    };
    sink.entry(entry);
    if (entry.type === 'file' && entry.size > 0) await feedData(absolute, entry.size, path, sink);
    if (type !== 'directory') return;
    const names = await readdir(absolute, { encoding: 'buffer' });
    names.sort(Buffer.compare);
    for (const name of names) {
      const child = name.toString('latin1');
      await visit(Buffer.concat([absolute, SLASH, name]), path === '.' ? child : `${path}/${child}`);
    }
  }

  await visit(rootPath, '.');
  return { inodes: firstPath.size };
}

const SLASH = Buffer.from('/');

/** Keeps what a lower layer needs: everything but overlay's private marks, except opacity. */
export function layerXattrs(xattrs: readonly TarXattr[]): TarXattr[] {
  return xattrs.filter((x) => x.name === OVERLAY_OPAQUE_XATTR || !x.name.startsWith(OVERLAY_PRIVATE_PREFIX));
}

function entryType(st: BigIntStats, absolute: Buffer): TarEntryType | undefined {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'directory';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return undefined;
  throw new FailedPreconditionError(`unknown file type (mode 0o${st.mode.toString(8)}) at ${absolute.toString()}`);
}

/** glibc's gnu_dev_major / gnu_dev_minor on the 64-bit dev_t. */
function deviceMajor(rdev: bigint): number {
  return Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
}

function deviceMinor(rdev: bigint): number {
  return Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
}

async function feedData(absolute: Buffer, size: number, path: ByteString, sink: TarSink): Promise<void> {
  const file = await open(absolute, 'r');
  try {
    let done = 0;
    while (done < size) {
      const chunk = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, size - done));
      const { bytesRead } = await file.read(chunk, 0, chunk.length, done);
      if (bytesRead === 0) {
        throw new FailedPreconditionError(`${JSON.stringify(path)} shrank from ${size} to ${done} bytes while it was committed`, {
          hint: 'stop writing into a snapshot before committing it, then commit again',
        });
      }
      sink.data(chunk.subarray(0, bytesRead));
      done += bytesRead;
    }
  } finally {
    await file.close();
  }
}
