/** `integrityctl layer umount <dir>`: undoes `integrityctl layer mount`. */
import type { Command } from 'commander';
import { unmountVerityLayer } from '../service/mounts/verity-layer-mount.js';
import { action } from './action.js';
import { commandGroup } from './commands.js';

export function registerLayerUmount(program: Command): void {
  commandGroup(program, 'layer')
    .command('umount')
    .description('Unmount a layer mounted by `integrityctl layer mount` and remove its dm-verity device')
    .argument('<dir>', 'the directory the layer is mounted on')
    .option('--json', 'print {"target","device","node","status","deferred"}')
    .addHelpText(
      'after',
      `
Unmounts <dir> and removes the dm-verity device under it; its loop devices go
with it. The device's last status is reported: C means dm-verity had found a
block that does not match the root hash. Mounts of the snapshotter's layers
are refused: the snapshotter manages those.

Example:
  integrityctl layer umount /mnt/layer`,
    )
    .action(
      action(async (dir: string, options: { json?: boolean }) => {
        const done = await unmountVerityLayer(dir);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(done)}\n`);
          return;
        }
        const status = done.status === 'C' ? 'C: dm-verity had found corrupted blocks' : (done.status ?? 'unknown');
        process.stdout.write(`unmounted ${done.target}; device ${done.device} (status ${status}) ${done.deferred ? 'is removed once closed' : 'removed'}\n`);
      }),
    );
}
