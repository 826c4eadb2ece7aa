/**
 * `integrityctl image verify <oci-layout>[:tag]` or `--containerd <ref>`:
 * every signature and root-hash check, as a node makes them.
 */
import type { Command } from 'commander';
import { DEFAULT_CONTAINERD_ADDRESS, DEFAULT_REGISTRY_CONFIG_PATH } from '../core/config.js';
import { silentLogger } from '../core/log.js';
import { InvalidArgumentError } from '../core/errors.js';
import { verifyImage, type ImageCheck } from '../image/verify.js';
import { openLayoutImage, type ImageSource } from '../oci/image-source.js';
import { ContainerdConnection } from '../service/containerd/connection.js';
import { GrpcContentClient } from '../service/containerd/content.js';
import { openContainerdImage } from '../service/containerd/image-source.js';
import { GrpcImageClient } from '../service/containerd/images.js';
import { RegistryClient } from '../service/registry/client.js';
import { action, ExitCode } from './action.js';
import { commandGroup } from './commands.js';
import { createProgress } from './progress.js';
import { addTrustOption, trustRootsFrom } from './trust-option.js';

/** CRI's namespace: on a node, that is where the images containers run from are. */
const DEFAULT_NAMESPACE = 'k8s.io';

interface VerifyCommandOptions {
  containerd?: string;
  hostsDir?: string;
  address?: string;
  namespace?: string;
  trust?: string[];
  tempDir?: string;
  json?: boolean;
}

export function registerImageVerify(program: Command): void {
  const command = commandGroup(program, 'image')
    .command('verify')
    .description('Check an image\'s signature, chain and every dm-verity root hash; exit 1 if any check fails')
    .argument('[image]', 'the image: <oci-layout-dir>[:tag] (or --containerd <ref>)')
    .option('--containerd <ref>', "the image in containerd's content store instead, by its name (`ctr images ls`), read through containerd's API")
    .option('--address <sock>', `with --containerd: containerd's API socket (default ${DEFAULT_CONTAINERD_ADDRESS})`)
    .option('--namespace <ns>', `with --containerd: the containerd namespace (default ${DEFAULT_NAMESPACE}, CRI's)`)
    .option('--hosts-dir <dir>', `with --containerd: containerd's registry hosts directory, for layer blobs the snapshotter fetched itself and containerd does not hold (default ${DEFAULT_REGISTRY_CONFIG_PATH})`)
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
With --containerd, the manifest (for an index: this machine's platform's) and
every blob are read through containerd's content service and checked against
their digests as they are read: what the node's snapshotter would convert. A
layer blob containerd does not hold (the snapshotter fetched it from the
registry at pull and kept only the layer) is read from the registry, through
the same hosts directory.
Exit status: 0 all passed, 1 a check failed, 2 bad input.

Examples:
  integrityctl image verify ./app-sealed:1.0 --trust /etc/containerd-integrity/trust.d
  integrityctl image verify ./app-sealed --trust root.pem --json
  integrityctl image verify --containerd registry.example/d8/app:1.0 --trust /etc/containerd-integrity/trust.d`,
    )
    .action(
      action(async (reference: string | undefined, options: VerifyCommandOptions) => {
        checkSource(reference, options);
        const trustRoots = await trustRootsFrom(options.trust);
        const connection = options.containerd === undefined ? undefined : new ContainerdConnection(options.address ?? DEFAULT_CONTAINERD_ADDRESS);
        const progress = createProgress('verifying');
        let result;
        try {
          const image: ImageSource = connection
            ? await openContainerdImage({
              content: new GrpcContentClient(connection),
              images: new GrpcImageClient(connection),
              namespace: options.namespace ?? DEFAULT_NAMESPACE,
              name: options.containerd!,
              registry: new RegistryClient({ hostsDir: options.hostsDir ?? DEFAULT_REGISTRY_CONFIG_PATH, logger: silentLogger }),
            })
            : await openLayoutImage(reference!);
          result = await verifyImage(image, trustRoots, {
            ...(options.tempDir !== undefined ? { tempDir: options.tempDir } : {}),
            onProgress: (done, total) => progress.update(done, total),
          });
        } finally {
          progress.finish();
          connection?.close();
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

/** Exactly one image: a layout argument or --containerd; the containerd options only with --containerd. */
function checkSource(reference: string | undefined, options: VerifyCommandOptions): void {
  if ((reference === undefined) === (options.containerd === undefined)) {
    throw new InvalidArgumentError('name one image: an OCI layout argument, or --containerd <ref>', {
      hint: 'e.g. `integrityctl image verify ./app:1.0` or `integrityctl image verify --containerd registry.example/app:1.0`',
    });
  }
  if (options.containerd === undefined && (options.address !== undefined || options.namespace !== undefined || options.hostsDir !== undefined)) {
    throw new InvalidArgumentError('--address, --namespace and --hosts-dir go with --containerd', { hint: 'add --containerd <ref>, or leave them out' });
  }
}

function formatCheck(check: ImageCheck): string {
  const status = { ok: 'ok     ', failed: 'FAILED ', skipped: 'skipped' }[check.status];
  const name = check.layer === undefined ? check.check : `${check.check} ${check.layer}`;
  return `  ${status} ${name.padEnd(17)} ${check.detail}\n${check.hint && check.status === 'failed' ? `          ${''.padEnd(17)} hint: ${check.hint}\n` : ''}`;
}
