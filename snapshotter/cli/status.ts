/** `integrityctl status`: every mounted layer, its dm-verity device and whether it is what it should be. */
import type { Command } from 'commander';
import { DEFAULT_ROOT, loadSnapshotterConfig } from '../core/config.js';
import type { LayerStatus, StatusReport } from '../service/status/evaluate.js';
import { readStatus } from '../service/status/read.js';
import { action, ExitCode } from './action.js';

interface StatusOptions {
  config?: string;
  root?: string;
  json?: boolean;
}

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('List the snapshotter\'s mounted layers with their dm-verity devices; exit 1 if any is corrupted or unexpected')
    .option('--config <toml>', 'the snapshotter\'s configuration file (for root, mounts.dir and verity)')
    .option('--root <dir>', `the snapshotter's state directory (overrides root; default ${DEFAULT_ROOT})`)
    .option('--json', 'print {"verity","layers":[...],"devices":[...],"ok"}')
    .addHelpText(
      'after',
      `
Reads the snapshotter's metadata (read-only), the mount table and the
device-mapper devices; the daemon need not be running. Needs root.

For each layer mounted under mounts.dir (and each refused layer whose
corrupted device is kept): the snapshot (namespace, name = chainID), the
images known to use it, its dm-verity device and the device's status (V:
verified so far, C: a block did not match), and whether the device's table
holds the expected root hash. STATE is one of
  verified    its own device, expected table, status V
  corrupted   status C: the layer's files were modified
  unexpected  another root hash, device or file; or no dm-verity although
              verity = "required"; or a mount the metadata does not know
  unverified  mounted without dm-verity (verity = "auto" on a kernel
              without it, or "off")
Devices made by \`integrityctl layer mount\` are listed after the layers.
Exit status: 0 nothing corrupted or unexpected, 1 otherwise, 2 bad input.

Examples:
  integrityctl status
  integrityctl status --config /etc/containerd-integrity/snapshotter.toml --json`,
    )
    .action(
      action(async (options: StatusOptions) => {
        const config = loadSnapshotterConfig(options.config, { root: options.root });
        const report = await readStatus(config);
        process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report));
        return report.ok ? ExitCode.OK : ExitCode.FAILED;
      }),
    );
}

function formatReport(report: StatusReport): string {
  const { verity } = report;
  const lines = [`dm-verity: ${verity.available ? 'available' : 'NOT available'} (${verity.detail}); verity = "${verity.mode}"`];
  if (report.layers.length === 0) {
    lines.push('no layers mounted');
  } else {
    lines.push(
      ...table([
        ['LAYER', 'STATE', 'STATUS', 'ROOT HASH', 'NODE', 'NAMESPACE', 'SNAPSHOT', 'IMAGES', 'DEVICE'],
        ...report.layers.map(layerRow),
      ]),
    );
    for (const layer of report.layers) for (const problem of layer.problems) lines.push(`  layer ${layer.id}: ${problem}`);
  }
  if (report.devices.length > 0) {
    lines.push('', 'devices of `integrityctl layer mount`:');
    lines.push(
      ...table([
        ['NODE', 'STATUS', 'MOUNTED AT', 'DEVICE'],
        ...report.devices.map((d) => [d.node, d.status ?? '?', d.mountPoints.join(',') || '-', d.name]),
      ]),
    );
  }
  const counts = new Map<string, number>();
  for (const layer of report.layers) counts.set(layer.state, (counts.get(layer.state) ?? 0) + 1);
  const summary = [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
  lines.push(`${report.ok ? 'ok' : 'NOT ok'}${summary ? `: ${summary}` : ''}`);
  return `${lines.join('\n')}\n`;
}

function layerRow(layer: LayerStatus): string[] {
  const rootHash = layer.rootHashMatches === null ? '-' : layer.rootHashMatches ? 'expected' : 'UNEXPECTED';
  return [
    String(layer.id),
    layer.state,
    layer.device?.status ?? '-',
    rootHash,
    layer.device?.node ?? 'none',
    layer.namespace ?? '?',
    layer.name ?? '?',
    layer.images.join(',') || '-',
    layer.device?.name ?? 'none',
  ];
}

/** Columns padded to their widest cell; the last one is not padded. */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}
