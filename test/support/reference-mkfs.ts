/**
 * The reference: a build of erofs-utils 1.8.10 (the version Delivery Kit
 * pins), run exactly as Delivery Kit runs it. Only for comparing outputs in
 * host tests; the project never builds or ships it. Point MKFS_EROFS_1_8_10
 * at another build if it is not in the default place.
 */
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REFERENCE_MKFS = process.env.MKFS_EROFS_1_8_10 ?? '/tmp/erofs-utils-1.8.10/mkfs/mkfs.erofs';

/** Delivery Kit's arguments, before the output path; the tar comes on stdin. */
export const DELIVERY_KIT_ARGS = ['-Uclear', '-T1750791050', '-x-1', '-Enoinline_data', '--aufs', '--tar=f'];

/** Why the reference cannot run here, or undefined when it can. */
export function referenceMkfsMissing(): string | undefined {
  try {
    accessSync(REFERENCE_MKFS, constants.X_OK);
    return undefined;
  } catch {
    return `${REFERENCE_MKFS} (erofs-utils 1.8.10) is not built here; set MKFS_EROFS_1_8_10 to a reference build`;
  }
}

export type ReferenceResult = { ok: true; image: Buffer } | { ok: false; status: number | null; signal: NodeJS.Signals | null; stderr: string };

/** Runs the reference on `tar`. SOURCE_DATE_EPOCH is removed: it would override -T. */
export function referenceMkfs(tar: Uint8Array): ReferenceResult {
  const dir = mkdtempSync(join(tmpdir(), 'mkfs-1.8.10-'));
  try {
    const out = join(dir, 'image.erofs');
    const env = { ...process.env };
    delete env.SOURCE_DATE_EPOCH;
    const run = spawnSync(REFERENCE_MKFS, [...DELIVERY_KIT_ARGS, out], { input: tar, env, encoding: 'latin1', maxBuffer: 64 << 20 });
    if (run.status !== 0) return { ok: false, status: run.status, signal: run.signal, stderr: run.stderr };
    return { ok: true, image: readFileSync(out) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Where two images first differ, in words a person can follow up with dump.erofs. */
export function describeDifference(expected: Uint8Array, actual: Uint8Array): string {
  if (expected.length !== actual.length) return `sizes differ: reference ${expected.length} bytes, ours ${actual.length}`;
  const at = expected.findIndex((b, i) => b !== actual[i]);
  if (at < 0) return 'identical';
  return `first difference at byte ${at} (block ${Math.floor(at / 4096)}, offset ${at % 4096}, nid ${Math.floor(at / 32)})`;
}
