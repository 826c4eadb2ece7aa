/**
 * The checkout this code runs from (the dir with package.json): sources and
 * dist* trees both live below it. Found by walking up from this file, so it
 * is right for `dist`, `dist-<name>` and tsx runs from the sources alike.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FailedPreconditionError } from '../../../snapshotter/core/errors.js';

export function packageRoot(): string {
  const here = fileURLToPath(import.meta.url);
  let dir = dirname(here);
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new FailedPreconditionError(`no package.json above ${here}`);
    dir = parent;
  }
  return dir;
}
