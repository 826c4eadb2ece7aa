/** `integrityctl layer mount <image> <dir>`: an EROFS layer mounted read-only through its own dm-verity device. */
import type { Command } from 'commander';
import { mountVerityLayer } from '../service/mounts/verity-layer-mount.js';
import { action } from './action.js';
import { commandGroup } from './commands.js';

interface MountCommandOptions {
  hashFile: string;
  rootHash: string;
  json?: boolean;
}

export function registerLayerMount(program: Command): void {
  commandGroup(program, 'layer')
    .command('mount')
    .description('Mount an EROFS layer image read-only through a dm-verity device checked against the given root hash')
    .argument('<image>', 'the EROFS layer image (e.g. from `integrityctl layer convert`)')
    .argument('<dir>', 'an existing directory to mount it on')
    .requiredOption('--hash-file <file>', 'its dm-verity hash tree (no superblock), as `layer convert --hash-file` writes it')
    .requiredOption('--root-hash <hex>', 'the root hash the layer must have (64 hex digits): the trusted value, not one read from the files')
    .option('--json', 'print {"image","hashTree","target","device","node"}')
    .addHelpText(
      'after',
      `
Needs root and a kernel with device-mapper and dm-verity (modprobe dm_verity).
The image and the hash file are attached to read-only loop devices, the device
is created from the pinned table (sha256, 4096-byte blocks, format 1, the
pinned salt, the given root hash; nothing is read from the files to build it)
and named integrity-<root hash>-<tag of the image path>. Every block is read
through dm-verity once before the mount: a wrong root hash, or a modified
image or hash file, fails with exit status 1 and leaves no device or loop
device behind. Later modifications make reads fail with EIO and the device's
status C (see \`integrityctl status\`). Undo with \`integrityctl layer umount <dir>\`.

Examples:
  integrityctl layer convert layer.tar.gz -o layer.erofs --hash-file layer.verity --json
  integrityctl layer mount layer.erofs /mnt/layer --hash-file layer.verity --root-hash <hex>`,
    )
    .action(
      action(async (image: string, dir: string, options: MountCommandOptions) => {
        const mounted = await mountVerityLayer({ image, hashTree: options.hashFile, rootHash: options.rootHash, target: dir });
        if (options.json) process.stdout.write(`${JSON.stringify(mounted)}\n`);
        else process.stdout.write(`mounted ${mounted.image} at ${mounted.target} through ${mounted.node} (${mounted.device})\n`);
      }),
    );
}
