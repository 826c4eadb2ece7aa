/**
 * veritysetup (cryptsetup-bin) as the oracle for dm-verity trees: the pinned
 * parameters, the tree in a separate file, no superblock.
 */
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { promisify } from 'node:util';
import { verityParams } from '../../snapshotter/layer/verity/params.js';

export const VERITYSETUP = '/usr/sbin/veritysetup';

/** Why veritysetup cannot serve as the oracle here, or undefined when it can. */
export function veritysetupMissing(): string | undefined {
  try {
    accessSync(VERITYSETUP, constants.X_OK);
    return undefined;
  } catch {
    return `${VERITYSETUP} is not installed (Debian package cryptsetup-bin)`;
  }
}

export interface VeritysetupOutcome {
  /** Exit status; 0 = formatted. */
  status: number;
  rootHash: string | undefined;
  output: string;
}

/** `veritysetup format` with the pinned block sizes; `salt` is hex or '-' (default: the pinned salt). */
export async function veritysetupFormat(data: string, hashFile: string, salt: string = verityParams.saltHex): Promise<VeritysetupOutcome> {
  const args = [
    'format',
    `--data-block-size=${verityParams.dataBlockBytes}`,
    `--hash-block-size=${verityParams.hashBlockBytes}`,
    `--hash=${verityParams.hashAlgorithm}`,
    `--format=${verityParams.format}`,
    `--salt=${salt}`,
    '--no-superblock',
    data,
    hashFile,
  ];
  try {
    const { stdout, stderr } = await promisify(execFile)(VERITYSETUP, args);
    const output = stdout + stderr;
    return { status: 0, rootHash: /^Root hash:\s+([0-9a-f]+)$/m.exec(output)?.[1], output };
  } catch (err) {
    const failure = err as { code?: unknown; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw err;
    return { status: failure.code, rootHash: undefined, output: `${failure.stdout ?? ''}${failure.stderr ?? ''}` };
  }
}
