/**
 * Small EROFS images for mount tests, made by Debian's mkfs.erofs (1.5) from a
 * directory: the kernel's view of a real image, independent of our writer.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

export const MKFS_EROFS = '/usr/bin/mkfs.erofs';

/** Why images cannot be made here, or undefined when they can. */
export function mkfsErofsMissing(): string | undefined {
  try {
    accessSync(MKFS_EROFS, constants.X_OK);
    return undefined;
  } catch {
    return `${MKFS_EROFS} is not installed (Debian package erofs-utils)`;
  }
}

/** Files to put in an image: path relative to its root → content. */
export type Tree = Record<string, string | Buffer>;

/** Writes `tree` under `sourceDir`, then builds `image` from it; returns `image`. */
export async function makeErofsImage(image: string, sourceDir: string, tree: Tree): Promise<string> {
  mkdirSync(sourceDir, { recursive: true });
  for (const [path, content] of Object.entries(tree)) {
    const file = join(sourceDir, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, content);
  }
  await promisify(execFile)(MKFS_EROFS, ['--quiet', image, sourceDir]);
  return image;
}
