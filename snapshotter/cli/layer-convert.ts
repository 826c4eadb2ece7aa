/** `integrityctl layer convert <layer|->`: an OCI layer → EROFS image + dm-verity hash tree. */
import type { Command } from 'commander';
import { createReadStream, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidArgumentError, NotFoundError, isNotFound } from '../core/errors.js';
import { convertLayer } from '../layer/convert.js';
import { action } from './action.js';
import { commandGroup } from './commands.js';
import { createProgress } from './progress.js';

interface ConvertCommandOptions {
  output: string;
  hashFile?: string;
  json?: boolean;
}

const READ_CHUNK = 1 << 20;

function layerSize(path: string): number {
  try {
    return statSync(path).size;
  } catch (err) {
    // A wrong argument, not a missing resource: exit status 2 (bad input), like every other refused input.
    if (isNotFound(err)) throw new InvalidArgumentError(`layer ${path} does not exist`, { hint: 'give the path of a layer blob or tar, or - for stdin' });
    throw err;
  }
}

function pathKind(path: string): 'directory' | 'other' | 'absent' {
  try {
    return statSync(path).isDirectory() ? 'directory' : 'other';
  } catch (err) {
    if (isNotFound(err) || (err as { code?: unknown }).code === 'ENOTDIR') return 'absent';
    throw err;
  }
}

/** Output paths that would only fail after the whole layer was read, or that would overwrite each other, are refused first. */
function checkOutputs(output: string, hashFile: string | undefined): void {
  for (const [what, path] of [['output', output], ['hash file', hashFile]] as const) {
    if (path === undefined) continue;
    if (pathKind(dirname(path)) !== 'directory') {
      throw new NotFoundError(`the directory of the ${what} ${path} does not exist`, { hint: 'create the directory first' });
    }
    if (pathKind(path) === 'directory') throw new InvalidArgumentError(`the ${what} ${path} is a directory`, { hint: 'name a file to write' });
  }
  if (hashFile !== undefined && resolve(hashFile) === resolve(output)) {
    throw new InvalidArgumentError(`the hash file and the output are the same file (${output})`, { hint: 'give --hash-file another name' });
  }
}

export function registerLayerConvert(program: Command): void {
  commandGroup(program, 'layer')
    .command('convert')
    .description('Convert a layer (tar, tar+gzip or tar+zstd) into an EROFS image and its dm-verity hash tree')
    .argument('<layer>', 'the layer blob or tar file; - reads standard input')
    .requiredOption('-o, --output <file>', 'the EROFS image to write (replaced atomically)')
    .option('--hash-file <file>', 'write the dm-verity hash tree here (no superblock)')
    .option('--json', 'print {"erofs","bytes","sha256","rootHash","salt","dataBlocks","hashFile"}')
    .addHelpText(
      'after',
      `
The compression is detected from the first bytes. The image is byte-identical to
what erofs-utils 1.8.10 writes for
  mkfs.erofs -Uclear -T1750791050 -x-1 -Enoinline_data --aufs --tar=f <out>
given the uncompressed tar, and the root hash to
  veritysetup format --data-block-size=4096 --hash-block-size=4096 \\
    --salt=<pinned salt> --no-superblock <out> <hash-file>
Nothing is extracted to disk and no root is needed. On any error no output is left;
on SIGINT or SIGTERM the temporary files are removed and the command exits by the signal.

Examples:
  integrityctl layer convert layer.tar.gz -o layer.erofs --hash-file layer.verity
  skopeo ... | integrityctl layer convert - -o layer.erofs --json`,
    )
    .action(
      action(async (layer: string, options: ConvertCommandOptions) => {
        const fromStdin = layer === '-';
        const total = fromStdin ? 0 : layerSize(layer);
        checkOutputs(options.output, options.hashFile);
        const input = fromStdin ? process.stdin : createReadStream(layer, { highWaterMark: READ_CHUNK });
        const progress = createProgress(`converting ${fromStdin ? 'stdin' : layer}`);
        const interrupt = onInterrupt();
        let result;
        try {
          result = await convertLayer(input, {
            output: options.output,
            tempDir: dirname(options.output),
            signal: interrupt.signal,
            // Neither the blob digest nor the diff ID is printed: not computing them saves ~10% of the CPU time.
            layerDigests: false,
            ...(options.hashFile !== undefined ? { hashFile: options.hashFile } : {}),
            onProgress: (bytesRead) => progress.update(bytesRead, Math.max(total, bytesRead)),
            onWarning: (message) => process.stderr.write(`integrityctl: warning: ${message}\n`),
          });
        } catch (err) {
          if (interrupt.received === undefined) throw err;
        } finally {
          progress.finish();
          interrupt.dispose();
        }
        if (result === undefined) {
          process.stderr.write(`integrityctl: interrupted by ${interrupt.received}; no output was written\n`);
          // Die of the signal, as an interrupted program should, now that nothing is left behind
          // (dispose() gave the signal its default action back).
          process.kill(process.pid, interrupt.received);
          return;
        }
        const { erofs, bytes, sha256, rootHash, salt, dataBlocks, hashFile } = result;
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ erofs, bytes, sha256, rootHash, salt, dataBlocks, hashFile: hashFile ?? null })}\n`);
        } else {
          process.stdout.write(`${erofs}: ${bytes} bytes, sha256 ${sha256}\nroot hash ${rootHash}\n`);
        }
      }),
    );
}

const INTERRUPTS = ['SIGINT', 'SIGTERM'] as const;

/**
 * SIGINT and SIGTERM abort the conversion instead of killing the process at
 * once, so the temporary image, hash file and spill are removed first.
 */
function onInterrupt(): { signal: AbortSignal; readonly received: NodeJS.Signals | undefined; dispose(): void } {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handle = (name: NodeJS.Signals): void => {
    received ??= name;
    controller.abort(new Error(`interrupted by ${name}`));
  };
  for (const name of INTERRUPTS) process.on(name, handle);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose: () => {
      for (const name of INTERRUPTS) process.off(name, handle);
    },
  };
}
