/** `integrityctl snapshotter serve`: the containerd proxy snapshotter daemon, until SIGTERM or SIGINT. */
import type { Command } from 'commander';
import { DEFAULT_ADDRESS, DEFAULT_ROOT, loadSnapshotterConfig } from '../core/config.js';
import { createLogger } from '../core/log.js';
import { startSnapshotterDaemon } from '../service/daemon.js';
import { action } from './action.js';
import { commandGroup } from './commands.js';

interface ServeOptions {
  config?: string;
  root?: string;
  address?: string;
}

export function registerSnapshotterServe(program: Command): void {
  commandGroup(program, 'snapshotter')
    .command('serve')
    .description('Serve containerd.services.snapshots.v1.Snapshots on a unix socket (runs until SIGTERM/SIGINT)')
    .option('--config <toml>', 'configuration file (see docs/configuration.md); without it every key has its default')
    .option('--root <dir>', `state directory: metadata, snapshots, layer files (overrides root; default ${DEFAULT_ROOT})`)
    .option('--address <socket>', `unix socket to listen on (overrides address; default ${DEFAULT_ADDRESS})`)
    .addHelpText(
      'after',
      `
Register it in containerd 1.6 (/etc/containerd/config.toml, version = 2):

  [proxy_plugins.integrity]
    type = "snapshot"
    address = "${DEFAULT_ADDRESS}"

and for CRI: [plugins."io.containerd.grpc.v1.cri".containerd] snapshotter = "integrity".
Runs as root: it mounts layer images. Logs are JSON lines on stderr.
SIGHUP reloads the trust roots (signatures.trust_dirs); SIGTERM/SIGINT stop it.

Examples:
  integrityctl snapshotter serve
  integrityctl snapshotter serve --config /etc/containerd-integrity/snapshotter.toml
  integrityctl snapshotter serve --root /tmp/ci-root --address /tmp/ci.sock`,
    )
    .action(
      action(async (options: ServeOptions) => {
        const config = loadSnapshotterConfig(options.config, { root: options.root, address: options.address });
        const logger = createLogger('snapshotter', { level: config.log.level });
        const daemon = await startSnapshotterDaemon(config, logger);
        // Node's default for SIGHUP is to exit: the daemon reloads its trust roots instead.
        process.on('SIGHUP', () => {
          logger.info({ signal: 'SIGHUP' }, 'reloading the trust roots');
          void daemon.reloadTrustRoots();
        });
        const signal = await new Promise<NodeJS.Signals>((resolve) => {
          for (const name of ['SIGTERM', 'SIGINT'] as const) process.once(name, () => resolve(name));
        });
        logger.info({ signal }, 'stopping');
        await daemon.close();
      }),
    );
}
