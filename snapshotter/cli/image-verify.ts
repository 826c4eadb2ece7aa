/** `integrityctl image verify <oci-layout>[:tag]`: every signature and root-hash check, as a node makes them. */
import type { Command } from 'commander';
import { verifyImage, type ImageCheck } from '../image/verify.js';
import { openLayoutImage } from '../oci/image-source.js';
import { action, ExitCode } from './action.js';
import { commandGroup } from './commands.js';
import { createProgress } from './progress.js';
import { addTrustOption, trustRootsFrom } from './trust-option.js';

interface VerifyCommandOptions {
  trust?: string[];
  tempDir?: string;
  json?: boolean;
}

export function registerImageVerify(program: Command): void {
  const command = commandGroup(program, 'image', 'Seal (root hashes + signature) and verify OCI images')
    .command('verify')
    .description('Check an image\'s signature, chain and every dm-verity root hash; exit 1 if any check fails')
    .argument('<image>', 'the image: <oci-layout-dir>[:tag]')
    .option('--temp-dir <dir>', 'scratch space for the EROFS images (one uncompressed layer at a time)')
    .option('--json', 'print {"image","manifestDigest","ok","checks":[{"check","status","detail",...}]}');
  addTrustOption(command)
    .addHelpText(
      'after',
      `
Checks, in order, each printed as ok / FAILED / skipped:
  bundle             the io.deckhouse.delivery-kit.signature/.cert/.chain annotations
  chain              leaf → chain → one of the trust roots, at the leaf's NotBefore
  signature          the signature over the manifest's signed message
  layer-root-hashes  the signed io.containerd-integrity.layer-root-hashes list
  layer              each layer blob (digest checked) converted to EROFS; its root hash
                     against the signed list and the layer's annotation
  image-root-hash    the flattened image's root hash against the manifest annotation
Exit status: 0 all passed, 1 a check failed, 2 bad input.

Examples:
  integrityctl image verify ./app-sealed:1.0 --trust /etc/containerd-integrity/trust.d
  integrityctl image verify ./app-sealed --trust root.pem --json`,
    )
    .action(
      action(async (reference: string, options: VerifyCommandOptions) => {
        const trustRoots = (await trustRootsFrom(options.trust)).map((r) => r.certificate);
        const image = await openLayoutImage(reference);
        const progress = createProgress('verifying');
        let result;
        try {
          result = await verifyImage(image, trustRoots, {
            ...(options.tempDir !== undefined ? { tempDir: options.tempDir } : {}),
            onProgress: (done, total) => progress.update(done, total),
          });
        } finally {
          progress.finish();
        }
        if (options.json) {
          process.stdout.write(`${JSON.stringify(result)}\n`);
        } else {
          process.stdout.write(`${result.image} (manifest ${result.manifestDigest})\n`);
          for (const check of result.checks) process.stdout.write(formatCheck(check));
          process.stdout.write(result.ok ? 'verified\n' : 'NOT verified\n');
        }
        return result.ok ? ExitCode.OK : ExitCode.FAILED;
      }),
    );
}

function formatCheck(check: ImageCheck): string {
  const status = { ok: 'ok     ', failed: 'FAILED ', skipped: 'skipped' }[check.status];
  const name = check.layer === undefined ? check.check : `${check.check} ${check.layer}`;
  return `  ${status} ${name.padEnd(17)} ${check.detail}\n${check.hint && check.status === 'failed' ? `          ${''.padEnd(17)} hint: ${check.hint}\n` : ''}`;
}
