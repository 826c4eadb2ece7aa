/**
 * Where VM artifacts (the initramfs, the uncompressed kernel, run dirs) live:
 * under the system temp dir, shared by every test file and every build dir.
 * Cached files are named by what they were built from, so a name that exists
 * is up to date, and they are written crash-ordered so a reader never sees a
 * partial one (parallel test runs may build the same file at once).
 */
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtomicFile } from '../../../snapshotter/core/atomic-file.js';

export const CACHE_DIR = join(tmpdir(), 'containerd-integrity-vm');

export function cachePath(name: string): string {
  return join(CACHE_DIR, name);
}

export function writeCacheFile(path: string, data: Uint8Array): void {
  mkdirSync(CACHE_DIR, { recursive: true });
  const file = AtomicFile.create(path);
  try {
    file.write(data);
    file.commit();
  } catch (err) {
    file.abort();
    throw err;
  }
}
