/** `integrityctl layer verity <file>`: the dm-verity root hash (and hash tree) of an image file. */
import type { Command } from 'commander';
import { availableParallelism } from 'node:os';
import { InvalidArgumentError } from '../core/errors.js';
import { parseSaltHex, verityParams } from '../layer/verity/params.js';
import { verityOfFile } from '../layer/verity/tree.js';
import { action } from './action.js';
import { commandGroup } from './commands.js';

interface VerityCommandOptions {
  hashFile?: string;
  salt: string;
  workers?: string;
  json?: boolean;
}

export function registerLayerVerity(program: Command): void {
  commandGroup(program, 'layer')
    .command('verity')
    .description('Compute the dm-verity root hash of an image file and optionally write its hash tree')
    .argument('<file>', 'the data: an EROFS image or any file whose size is a positive multiple of 4096')
    .option('--hash-file <path>', 'write the hash tree here (replaced atomically; no superblock)')
    .option('--salt <hex>', 'salt in hex, or - for none', verityParams.saltHex)
    .option('--workers <n>', '0 or 1: hash in this thread; 2: add a hashing thread beside it (the result is the same) (default: 2 on a machine with two cores or more)')
    .option('--json', 'print {"rootHash","salt","dataBlocks","hashBlocks","hashFile"} instead of the root hash')
    .addHelpText(
      'after',
      `
Output equals \`veritysetup format --data-block-size=4096 --hash-block-size=4096
--salt=<salt> --no-superblock <file> <hash-file>\` (sha256, format 1): the same
root hash and the same hash-file bytes. Files that are empty or not a multiple
of 4096 bytes are refused (veritysetup would leave a partial last block
unprotected).

Examples:
  integrityctl layer verity layer.erofs
  integrityctl layer verity layer.erofs --hash-file layer.verity --json`,
    )
    .action(
      action(async (file: string, options: VerityCommandOptions) => {
        const result = await verityOfFile(file, {
          salt: parseSaltHex(options.salt),
          workers: options.workers === undefined ? defaultWorkers() : parseWorkers(options.workers),
          ...(options.hashFile !== undefined ? { hashFile: options.hashFile } : {}),
        });
        if (options.json) {
          const { rootHash, salt, dataBlocks, hashBlocks } = result;
          process.stdout.write(`${JSON.stringify({ rootHash, salt, dataBlocks, hashBlocks, hashFile: result.hashFile ?? null })}\n`);
        } else {
          process.stdout.write(`${result.rootHash}\n`);
        }
      }),
    );
}

/** A hashing thread beside this one keeps both cores of a small node busy; more would only add messaging. */
function defaultWorkers(): number {
  return Math.min(2, availableParallelism());
}

function parseWorkers(text: string): number {
  if (!/^\d+$/.test(text)) {
    throw new InvalidArgumentError(`--workers ${JSON.stringify(text)} is not a whole number`, {
      hint: 'give 0 to hash in this thread, or a thread count such as 2',
    });
  }
  return Number(text);
}
