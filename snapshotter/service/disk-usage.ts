/**
 * Disk usage of a tree as containerd counts it (continuity fs.DiskUsage):
 * allocated blocks × 512 and the number of distinct inodes, hard links once.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Usage } from './metadata/types.js';

export async function diskUsage(root: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0n;
  async function visit(path: string): Promise<void> {
    const st = await lstat(path, { bigint: true });
    const inode = `${st.dev}:${st.ino}`;
    if (!seen.has(inode)) {
      seen.add(inode);
      size += st.blocks * 512n;
    }
    if (st.isDirectory()) {
      for (const name of await readdir(path)) await visit(join(path, name));
    }
  }
  await visit(root);
  return { size: Number(size), inodes: seen.size };
}
