/** `integrityctl signature verify --message <hex> --bundle <file.json>`: one Delivery Kit bundle over one message. */
import type { Command } from 'commander';
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, isNotFound, NotFoundError } from '../core/errors.js';
import { parseBundle, verifyBundle } from '../signature/bundle.js';
import { describe, describePath } from '../signature/chain.js';
import { SignatureCheckError } from '../signature/errors.js';
import { isSignedMessage } from '../signature/payload.js';
import { action, ExitCode } from './action.js';
import { commandGroup } from './commands.js';
import { addTrustOption, trustRootsFrom } from './trust-option.js';

interface SignatureVerifyOptions {
  message: string;
  bundle: string;
  trust?: string[];
  json?: boolean;
}

export function registerSignatureVerify(program: Command): void {
  const command = commandGroup(program, 'signature')
    .command('verify')
    .description('Verify a signature bundle over a message: the chain to a trust root, then the signature')
    .requiredOption('--message <hex>', 'the signed message: 64 lowercase hex digits (for images, the SHA-256 of the manifest payload)')
    .requiredOption('--bundle <file.json>', 'a JSON object with io.deckhouse.delivery-kit.signature, .cert and .chain (the form Delivery Kit embeds in signed binaries)')
    .option('--json', 'print {"ok","scheme","path"} or {"ok":false,"check","error"}');
  addTrustOption(command)
    .addHelpText(
      'after',
      `
The certificate chain is validated at the signing certificate's NotBefore.
Exit status: 0 verified, 1 refused (the message says which check), 2 bad input.

Example:
  integrityctl signature verify --message 3f5e...c1 --bundle bundle.json --trust root.pem`,
    )
    .action(
      action(async (options: SignatureVerifyOptions) => {
        if (!isSignedMessage(options.message)) {
          throw new InvalidArgumentError(`--message ${JSON.stringify(options.message)} is not 64 lowercase hex digits`, {
            hint: 'pass the hex SHA-256 the bundle signs',
          });
        }
        const annotations = await readBundleFile(options.bundle);
        const trustRoots = await trustRootsFrom(options.trust);
        const subject = `bundle ${options.bundle}`;
        let verified;
        try {
          verified = await verifyBundle(parseBundle(annotations, subject), options.message, trustRoots, subject);
        } catch (err) {
          if (!options.json || !(err instanceof SignatureCheckError)) throw err;
          process.stdout.write(`${JSON.stringify({ ok: false, check: err.check, error: err.message, hint: err.hint })}\n`);
          return ExitCode.FAILED;
        }
        if (options.json) {
          const path = verified.path.certificates.map((c) => c.subject);
          process.stdout.write(`${JSON.stringify({ ok: true, scheme: verified.scheme, path, validatedAt: verified.path.validatedAt.toISOString() })}\n`);
        } else {
          process.stdout.write(`verified: ${verified.scheme} signature by ${describe(verified.path.certificates[0]!)}\n`);
          process.stdout.write(`  chain: ${describePath(verified.path)}\n`);
        }
      }),
    );
}

async function readBundleFile(path: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isNotFound(err)) throw new NotFoundError(`--bundle ${path} does not exist`, { hint: 'pass the bundle JSON file' });
    throw err;
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`--bundle ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || Object.values(doc).some((v) => typeof v !== 'string')) {
    throw new InvalidArgumentError(`--bundle ${path} is not a JSON object of strings`, {
      hint: 'the bundle is {"io.deckhouse.delivery-kit.signature": "...", "io.deckhouse.delivery-kit.cert": "...", "io.deckhouse.delivery-kit.chain": "..."}',
    });
  }
  return doc as Record<string, string>;
}
