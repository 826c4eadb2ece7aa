/**
 * Names and uuids of the dm-verity devices layers are mounted through.
 *
 * name  `integrity-<root hash, 64 hex>-<first 16 hex of sha256(image path)>`  (91 bytes of the kernel's 127)
 * uuid  `containerd-integrity:<first 16 hex of sha256(state root)>:<layer id>`  (snapshotter devices only)
 *
 * The name is a function of the layer alone, so a restarted daemon, `integrityctl
 * status` and `integrityctl layer umount` find a layer's device without any
 * record of it. It holds the full root hash the table was built from, so
 * `dmsetup ls` says what each device checks against; the path tag keeps two
 * layer files with identical content (same root hash, e.g. one layer pulled in
 * two namespaces) on devices of their own: a device reads one file through its
 * loop device, and the snapshots owning those files are removed independently.
 * The path, not the file's dev/ino, because it is stable across reboots and
 * known without a stat; a file replaced under the same path is caught by the
 * backing-file check before a device is reused (verity-check.ts).
 *
 * The uuid says which snapshotter (state root) made a device and for which
 * layer, so a daemon only ever sweeps its own devices and status can list a
 * device nothing mounts. Devices made by `integrityctl layer mount` have no uuid.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../../core/errors.js';
import { verityParams } from '../../layer/verity/params.js';

export const VERITY_DEVICE_PREFIX = 'integrity-';
export const SNAPSHOTTER_UUID_PREFIX = 'containerd-integrity:';

/** Hex digits of sha256 kept in tags: 64 bits, far from any collision among one node's paths. */
const TAG_HEX = 16;

const ROOT_HASH_HEX = verityParams.digestBytes * 2;
const NAME_PATTERN = new RegExp(`^${VERITY_DEVICE_PREFIX}([0-9a-f]{${ROOT_HASH_HEX}})-([0-9a-f]{${TAG_HEX}})$`);
const UUID_PATTERN = new RegExp(`^${SNAPSHOTTER_UUID_PREFIX}([0-9a-f]{${TAG_HEX}}):([1-9][0-9]*)$`);

/** The device name for `image` (an absolute path) checked against `rootHash`. */
export function verityDeviceName(rootHash: string, image: string): string {
  if (!new RegExp(`^[0-9a-fA-F]{${ROOT_HASH_HEX}}$`).test(rootHash)) {
    throw new InvalidArgumentError(`root hash ${JSON.stringify(rootHash)} is not ${ROOT_HASH_HEX} hex digits`, {
      hint: 'give the sha256 root hash as `integrityctl layer verity` or veritysetup prints it',
    });
  }
  if (!image.startsWith('/')) throw new InvalidArgumentError(`image path ${JSON.stringify(image)} is not absolute`);
  return `${VERITY_DEVICE_PREFIX}${rootHash.toLowerCase()}-${tag(image)}`;
}

/** The root hash a device name claims, or undefined when the name is not one of ours. */
export function parseVerityDeviceName(name: string): { rootHash: string; imageTag: string } | undefined {
  const m = NAME_PATTERN.exec(name);
  return m ? { rootHash: m[1]!, imageTag: m[2]! } : undefined;
}

/** The snapshotter instance owning a state root, as its devices' uuids name it. */
export function snapshotterScope(root: string): string {
  return tag(root);
}

export function snapshotterDeviceUuid(scope: string, layer: number): string {
  return `${SNAPSHOTTER_UUID_PREFIX}${scope}:${layer}`;
}

/** The scope and layer id in a snapshotter device's uuid, or undefined for any other uuid. */
export function parseSnapshotterDeviceUuid(uuid: string): { scope: string; layer: number } | undefined {
  const m = UUID_PATTERN.exec(uuid);
  return m ? { scope: m[1]!, layer: Number(m[2]) } : undefined;
}

function tag(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, TAG_HEX);
}
