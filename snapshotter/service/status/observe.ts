/**
 * The I/O half of the layer status: what is mounted under the mount
 * directory (mountinfo), which dm-verity devices exist with their tables,
 * statuses and loop backing files (dm ioctls), and what the metadata expects
 * of each layer (root hash, files). No judgement here: evaluate.ts does that.
 * The daemon's periodic check and `integrityctl status` both call it.
 */
import { basename, dirname } from 'node:path';
import type { RootLayout } from '../layout.js';
import type { MetadataStore } from '../metadata/store.js';
import type { LayerRecord } from '../metadata/types.js';
import { expectedRootHash } from '../mounts/mountable-layer.js';
import { readMountInfo, type MountInfoEntry } from '../mounts/mountinfo.js';
import type { VerityExpectation, VerityObservation } from '../mounts/verity-check.js';
import { inspectVerityDevice, listVerityDevices, verityExpectation, type VerityAvailability } from '../mounts/verity-device.js';
import { parseSnapshotterDeviceUuid } from '../mounts/verity-identity.js';

export interface DeviceObservation {
  name: string;
  /** /dev/dm-<minor>. */
  node: string;
  openCount: number;
  observation: VerityObservation;
}

/** One layer that is mounted under the mount directory or has a device of this snapshotter. */
export interface LayerObservation {
  id: number;
  /** Its committed snapshot; undefined when the metadata has none with this id. */
  record: LayerRecord | undefined;
  /** The mounts at `<mounts.dir>/<id>`, bottom first (more than one is wrong). */
  mounts: MountInfoEntry[];
  /** The dm device the top mount is on, or else this snapshotter's device for the layer. */
  device: DeviceObservation | undefined;
  /** The top mount is on a dm device of someone else (not one of ours). */
  foreignDevice: boolean;
  expectation: VerityExpectation | undefined;
}

/** A device named like ours without a snapshotter uuid: made by `integrityctl layer mount`. */
export interface OtherDeviceObservation {
  device: DeviceObservation;
  mountPoints: string[];
}

export interface NodeObservation {
  verity: VerityAvailability;
  layers: LayerObservation[];
  others: OtherDeviceObservation[];
}

export interface ObserveOptions {
  layout: RootLayout;
  mountsDir: string;
  /** snapshotterScope(root). */
  scope: string;
  records: Pick<MetadataStore, 'committedLayer'>;
  verity: VerityAvailability;
}

export async function observeNode(options: ObserveOptions): Promise<NodeObservation> {
  const mountTable = await readMountInfo();
  const layerMounts = new Map<number, MountInfoEntry[]>();
  for (const entry of mountTable) {
    const id = layerIdOf(entry.mountPoint, options.mountsDir);
    if (id !== undefined) layerMounts.set(id, [...(layerMounts.get(id) ?? []), entry]);
  }

  const devices: (DeviceObservation & { uuid: string; minor: number })[] = [];
  if (options.verity.available) {
    for (const info of await listVerityDevices()) {
      const inspected = await inspectVerityDevice(info.name);
      // No live table: being created this moment (or a crash leftover the daemon's sweep removes); nothing can be mounted on it.
      if (!inspected?.info.activeTable) continue;
      devices.push({ name: info.name, node: inspected.node, openCount: inspected.info.openCount, observation: inspected.observation, uuid: info.uuid, minor: info.minor });
    }
  }
  const ours = new Map<number, DeviceObservation>();
  const others: OtherDeviceObservation[] = [];
  for (const device of devices) {
    const owner = parseSnapshotterDeviceUuid(device.uuid);
    if (owner?.scope === options.scope) ours.set(owner.layer, device);
    else if (device.uuid === '') others.push({ device, mountPoints: mountTable.filter((e) => e.source === device.node).map((e) => e.mountPoint) });
    // Devices of another snapshotter (another state root) are that one's business.
  }

  const ids = [...new Set([...layerMounts.keys(), ...ours.keys()])].sort((a, b) => a - b);
  const layers: LayerObservation[] = [];
  for (const id of ids) {
    const mounts = layerMounts.get(id) ?? [];
    const top = mounts.at(-1);
    // Not mounted: its device (kept after a refusal, or a leftover). Mounted: the device under the mount, if ours.
    let device = top ? undefined : ours.get(id);
    let foreignDevice = false;
    const dmMinor = top && /^\/dev\/dm-(\d+)$/.exec(top.source)?.[1];
    if (dmMinor !== undefined) {
      const mountedOn = devices.find((d) => d.minor === Number(dmMinor));
      if (mountedOn && ours.get(id) === mountedOn) device = mountedOn;
      else foreignDevice = true;
    }
    const record = options.records.committedLayer(id);
    layers.push({
      id,
      record,
      mounts,
      device,
      foreignDevice,
      expectation: record && (await verityExpectation(expectedRootHash(record), options.layout.image(id), options.layout.hashTree(id))),
    });
  }
  return { verity: options.verity, layers, others };
}

function layerIdOf(mountPoint: string, mountsDir: string): number | undefined {
  if (dirname(mountPoint) !== mountsDir) return undefined;
  const name = basename(mountPoint);
  return /^[1-9][0-9]*$/.test(name) ? Number(name) : undefined;
}
