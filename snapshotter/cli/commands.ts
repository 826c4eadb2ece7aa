/** The command registry: one import and one entry per command file. */
import type { Command } from 'commander';
import { registerLayerConvert } from './layer-convert.js';
import { registerLayerVerity } from './layer-verity.js';
import { registerLayerMount } from './layer-mount.js';
import { registerLayerUmount } from './layer-umount.js';
import { registerImageSeal } from './image-seal.js';
import { registerImageVerify } from './image-verify.js';
import { registerSignatureVerify } from './signature-verify.js';
import { registerSnapshotterServe } from './snapshotter-serve.js';
import { registerStatus } from './status.js';

export type RegisterCommand = (program: Command) => void;

/** The `integrityctl <name>` group, created by the first command file that needs it. */
export function commandGroup(program: Command, name: string, description: string): Command {
  return program.commands.find((c) => c.name() === name) ?? program.command(name).description(description);
}

export const commands: RegisterCommand[] = [
  registerLayerConvert,
  registerLayerVerity,
  registerLayerMount,
  registerLayerUmount,
  registerImageSeal,
  registerImageVerify,
  registerSignatureVerify,
  registerSnapshotterServe,
  registerStatus,
];
