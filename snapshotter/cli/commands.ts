/**
 * The command registry: where each command sits in the command tree and how
 * to load its file. Files are imported only when their command is the one
 * invoked (or for help), because some pull in heavy libraries (X.509, gRPC)
 * that would otherwise slow every command's start — badly so in a TCG VM.
 */
import type { Command } from 'commander';

export type RegisterCommand = (program: Command) => void;

interface CommandEntry {
  /** The words that invoke it, e.g. ['layer', 'convert']. */
  path: readonly string[];
  load: () => Promise<RegisterCommand>;
}

export const commands: readonly CommandEntry[] = [
  { path: ['layer', 'convert'], load: async () => (await import('./layer-convert.js')).registerLayerConvert },
  { path: ['layer', 'verity'], load: async () => (await import('./layer-verity.js')).registerLayerVerity },
  { path: ['layer', 'mount'], load: async () => (await import('./layer-mount.js')).registerLayerMount },
  { path: ['layer', 'umount'], load: async () => (await import('./layer-umount.js')).registerLayerUmount },
  { path: ['image', 'seal'], load: async () => (await import('./image-seal.js')).registerImageSeal },
  { path: ['image', 'verify'], load: async () => (await import('./image-verify.js')).registerImageVerify },
  { path: ['signature', 'verify'], load: async () => (await import('./signature-verify.js')).registerSignatureVerify },
  { path: ['snapshotter', 'serve'], load: async () => (await import('./snapshotter-serve.js')).registerSnapshotterServe },
  { path: ['status'], load: async () => (await import('./status.js')).registerStatus },
];

/**
 * The commands needed to run `args` (what follows the program name): those
 * whose path agrees with its leading words — one command, or a whole group
 * for `integrityctl layer --help` — and all of them for top-level help or a
 * word that names no command (so commander can suggest the right one).
 */
export async function loadCommands(args: readonly string[]): Promise<RegisterCommand[]> {
  const end = args.findIndex((arg) => arg.startsWith('-'));
  const words = end === -1 ? args : args.slice(0, end);
  const invoked = commands.filter(
    (entry) => words.length > 0 && entry.path.every((word, i) => i >= words.length || words[i] === word),
  );
  return Promise.all((invoked.length > 0 ? invoked : commands).map((entry) => entry.load()));
}

/** Command groups and their help line; here, not in each command file, so every group has one whichever file creates it. */
const groups = {
  layer: 'Convert, hash, mount and inspect layer images',
  image: 'Seal (root hashes + signature) and verify OCI images',
  signature: 'Check Delivery Kit signature bundles',
  snapshotter: 'The containerd proxy snapshotter: EROFS layers with dm-verity',
} as const;

/** The `integrityctl <name>` group, created by the first command file that needs it. */
export function commandGroup(program: Command, name: keyof typeof groups): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(groups[name]);
}
