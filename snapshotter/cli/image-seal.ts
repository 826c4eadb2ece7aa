/** `integrityctl image seal <oci-layout>[:tag] --key --cert [--chain] -o <oci-layout>[:tag]`: root hashes + signature. */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { isNotFound, NotFoundError } from '../core/errors.js';
import { createLogger } from '../core/log.js';
import { sealImage } from '../image/seal.js';
import { createSigner } from '../signature/bundle.js';
import { action } from './action.js';
import { commandGroup } from './commands.js';
import { createProgress } from './progress.js';
import { addTrustOption, trustRootsFrom } from './trust-option.js';

interface SealCommandOptions {
  key: string;
  cert: string;
  chain?: string;
  output: string;
  trust?: string[];
  tempDir?: string;
  json?: boolean;
}

export function registerImageSeal(program: Command): void {
  const command = commandGroup(program, 'image')
    .command('seal')
    .description('Compute every layer\'s dm-verity root hash, annotate and sign the manifest (Delivery Kit format)')
    .argument('<image>', 'the image to seal: <oci-layout-dir>[:tag]')
    .requiredOption('--key <pem>', 'the signing key: PEM private key (PKCS#8, ECDSA P-256/P-384, RSA or Ed25519), unencrypted')
    .requiredOption('--cert <pem>', 'the certificate of --key (PEM)')
    .option('--chain <pem>', 'intermediate CA certificates (PEM), optionally followed by the root, stored in the bundle')
    .requiredOption('-o, --output <image>', 'where to write the sealed image: <oci-layout-dir>[:tag] (new, empty, or an existing layout; default tag: the input\'s)')
    .option('--temp-dir <dir>', 'scratch space for the EROFS images (one uncompressed layer at a time)')
    .option('--json', 'print the result as JSON');
  addTrustOption(command)
    .addHelpText(
      'after',
      `
For every layer (tar, tar+gzip, tar+zstd) the EROFS image and its dm-verity
root hash are computed exactly as a node will, and written as the layer
annotation io.deckhouse.delivery-kit.dm-verity-root-hash. The manifest gets the
same annotation over the flattened image (as Delivery Kit computes it),
io.deckhouse.delivery-kit.build-timestamp, and
io.containerd-integrity.layer-root-hashes (the layers' root hashes in order),
then it is signed: io.deckhouse.delivery-kit.signature/.cert/.chain. Layer
blobs and the config are copied unchanged. With --trust, the signer's chain is
checked before anything is written. Needs no root.

Examples:
  integrityctl image seal ./app:1.0 --key signer.key --cert signer.crt --chain chain.pem -o ./app-sealed
  skopeo copy oci:./app-sealed:1.0 docker://registry.example/app:1.0`,
    )
    .action(
      action(async (input: string, options: SealCommandOptions) => {
        const signer = createSigner({
          key: await readInput(options.key, '--key'),
          cert: await readInput(options.cert, '--cert'),
          ...(options.chain !== undefined ? { chain: await readInput(options.chain, '--chain') } : {}),
        });
        const trustRoots = options.trust?.length ? await trustRootsFrom(options.trust) : undefined;
        const progress = createProgress('sealing');
        let result;
        try {
          result = await sealImage({
            input,
            output: options.output,
            signer,
            ...(trustRoots ? { trustRoots } : {}),
            ...(options.tempDir !== undefined ? { tempDir: options.tempDir } : {}),
            onProgress: (done, total) => progress.update(done, total),
            log: createLogger('image-seal', { level: process.env.INTEGRITY_LOG_LEVEL ?? 'warn' }),
          });
        } finally {
          progress.finish();
        }
        if (options.json) {
          process.stdout.write(`${JSON.stringify({
            output: result.output,
            manifestDigest: result.descriptor.digest,
            layerRootHashes: result.layerRootHashes,
            imageRootHash: result.imageRootHash,
            signer: signer.leaf.subject,
            scheme: signer.scheme,
          })}\n`);
        } else {
          process.stdout.write(`sealed ${result.output} (manifest ${result.descriptor.digest})\n`);
          result.layerRootHashes.forEach((h, i) => process.stdout.write(`  layer ${i + 1} ${result.manifest.layers[i]!.digest} root hash ${h}\n`));
          process.stdout.write(`  flattened image root hash ${result.imageRootHash}\n  signed by ${signer.leaf.subject} (${signer.scheme})\n`);
        }
      }),
    );
}

async function readInput(path: string, option: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) throw new NotFoundError(`${option} ${path} does not exist`, { hint: `pass the path of a PEM file to ${option}` });
    throw err;
  }
}
