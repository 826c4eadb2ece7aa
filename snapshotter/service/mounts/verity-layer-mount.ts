/**
 * One layer image mounted through its dm-verity device by hand, for people
 * testing kernels and layers (`integrityctl layer mount` / `layer umount`):
 * the same device setup the snapshotter uses (verity-device.ts), with no
 * snapshotter, no uuid, and nothing left behind when anything fails.
 */
import { realpath, stat } from 'node:fs/promises';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, isNotFound } from '../../core/errors.js';
import { mount, unmount } from '../../native/index.js';
import { readMountInfo } from './mountinfo.js';
import {
  createVerityDevice,
  inspectVerityDevice,
  removeVerityDevice,
  verityDeviceHealth,
  verityDeviceOfSource,
} from './verity-device.js';
import { parseSnapshotterDeviceUuid, verityDeviceName } from './verity-identity.js';

export interface VerityLayerMountInput {
  image: string;
  hashTree: string;
  rootHash: string;
  target: string;
}

export interface VerityLayerMount {
  image: string;
  hashTree: string;
  target: string;
  device: string;
  node: string;
}

export interface VerityLayerUnmount {
  target: string;
  device: string;
  node: string;
  /** The device's status just before it was removed: C means dm-verity had found corruption. */
  status: 'V' | 'C' | null;
  /** The device was still open (another mount of it) and goes on its last close. */
  deferred: boolean;
}

export async function mountVerityLayer(input: VerityLayerMountInput): Promise<VerityLayerMount> {
  const image = await existing(input.image, 'layer image');
  const hashTree = await existing(input.hashTree, 'hash tree file');
  const target = await existing(input.target, 'mount directory');
  if (!(await stat(target)).isDirectory()) throw new InvalidArgumentError(`${input.target} is not a directory`, { hint: 'mount on an existing directory' });
  const name = verityDeviceName(input.rootHash, image);
  const present = await inspectVerityDevice(name);
  if (present) {
    const where = await mountPointsOf(present.node);
    throw new AlreadyExistsError(
      `layer ${image} with this root hash is already set up as dm device ${name} (${present.node})${where.length ? `, mounted at ${where.join(', ')}` : ', not mounted'}`,
      { hint: where.length ? `unmount it first: integrityctl layer umount ${where[0]}` : `remove the leftover device: dmsetup remove ${name}` },
    );
  }
  const device = await createVerityDevice(
    {
      name,
      image,
      hashTree,
      rootHash: input.rootHash,
      layer: `layer ${image}`,
      fix:
        `check --root-hash: \`integrityctl layer verity ${image}\` prints the image's root hash; ` +
        `if that is the one given, ${image} or ${hashTree} was modified: convert the layer again`,
    },
    { keepCorrupted: false },
  );
  try {
    await mount(device.node, target, 'erofs', ['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID']);
  } catch (err) {
    await removeVerityDevice(name).catch(() => undefined);
    throw err;
  }
  return { image, hashTree, target, device: name, node: device.node };
}

export async function unmountVerityLayer(dir: string): Promise<VerityLayerUnmount> {
  const target = await existing(dir, 'mount directory');
  const top = (await readMountInfo()).filter((e) => e.mountPoint === target).at(-1);
  if (!top) throw new NotFoundError(`nothing is mounted at ${target}`, { hint: 'give the directory `integrityctl layer mount` mounted on' });
  const device = top.fsType === 'erofs' ? await verityDeviceOfSource(top.source) : undefined;
  if (!device) {
    throw new FailedPreconditionError(`${target} is not a layer mounted through dm-verity (${top.fsType} from ${top.source})`, {
      hint: 'unmount it with umount(8); `integrityctl layer umount` only undoes `integrityctl layer mount`',
    });
  }
  if (parseSnapshotterDeviceUuid(device.uuid)) {
    throw new FailedPreconditionError(`${target} is a layer of the snapshotter (device ${device.name})`, {
      hint: 'the snapshotter unmounts its layers when no snapshot needs them; remove the containers and images instead',
    });
  }
  const status = (await verityDeviceHealth(device.name)) ?? null;
  await unmount(target, ['UMOUNT_NOFOLLOW']);
  const { deferred } = await removeVerityDevice(device.name);
  return { target, device: device.name, node: `/dev/dm-${device.minor}`, status, deferred };
}

async function existing(path: string, what: string): Promise<string> {
  try {
    return await realpath(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new NotFoundError(`${what} ${path} does not exist`, { hint: 'check the path', cause: err });
  }
}


async function mountPointsOf(node: string): Promise<string[]> {
  return (await readMountInfo()).filter((e) => e.source === node).map((e) => e.mountPoint);
}
