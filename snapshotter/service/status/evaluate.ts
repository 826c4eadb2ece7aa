/**
 * The judging half of the layer status, pure: from what observe.ts saw and
 * the configured verity mode, one status per layer and a verdict for the
 * node. The states:
 *
 *   verified    on its own dm-verity device: the pinned table with the expected
 *               root hash over the layer's files, status V
 *   corrupted   that device found a block that does not match (status C)
 *   unexpected  anything else that should not be: another root hash, another
 *               device or file, stacked mounts, a layer the metadata does not
 *               know, no dm-verity although verity = "required"
 *   unverified  mounted without dm-verity, as verity = "auto" or "off" allows
 *
 * The node is not ok while any layer is corrupted or unexpected.
 */
import type { VerityMode } from '../../core/config.js';
import { expectedRootHash as signedOrRecordedRootHash } from '../mounts/mountable-layer.js';
import { judgeVerityDevice, parseVerityTable, verityHealth, type VerityHealth } from '../mounts/verity-check.js';
import { snapshotterDeviceUuid } from '../mounts/verity-identity.js';
import type { DeviceObservation, LayerObservation, NodeObservation, OtherDeviceObservation } from './observe.js';

export type LayerState = 'verified' | 'corrupted' | 'unexpected' | 'unverified';
export const LAYER_STATES: readonly LayerState[] = ['verified', 'corrupted', 'unexpected', 'unverified'];

export interface DeviceStatus {
  name: string;
  node: string;
  status: VerityHealth | null;
}

export interface LayerStatus {
  id: number;
  namespace: string | null;
  /** The committed snapshot's name: the chainID. */
  name: string | null;
  images: string[];
  mountPoint: string | null;
  device: DeviceStatus | null;
  expectedRootHash: string | null;
  tableRootHash: string | null;
  rootHashMatches: boolean | null;
  state: LayerState;
  /** Why the state is not `verified`, in words. */
  problems: string[];
}

/** A device of `integrityctl layer mount`: no expectation to hold it to, only its own status. */
export interface OtherDeviceStatus extends DeviceStatus {
  mountPoints: string[];
  tableRootHash: string | null;
}

export interface StatusReport {
  verity: { mode: VerityMode; available: boolean; detail: string };
  layers: LayerStatus[];
  devices: OtherDeviceStatus[];
  /** No layer and no device is corrupted or unexpected. */
  ok: boolean;
}

export function evaluateStatus(observation: NodeObservation, mode: VerityMode, scope: string): StatusReport {
  const layers = observation.layers.map((layer) => layerStatus(layer, mode, scope, observation));
  const devices = observation.others.map(otherDeviceStatus);
  const ok = layers.every((l) => l.state === 'verified' || l.state === 'unverified') && devices.every((d) => d.status === 'V');
  const verity = observation.verity;
  return {
    verity: { mode, available: verity.available, detail: verity.available ? `device-mapper ${verity.version}` : verity.reason },
    layers,
    devices,
    ok,
  };
}

/** Layers by state, every state present (for metrics). */
export function countByState(report: StatusReport): Record<LayerState, number> {
  const counts = Object.fromEntries(LAYER_STATES.map((s) => [s, 0])) as Record<LayerState, number>;
  for (const layer of report.layers) counts[layer.state]++;
  return counts;
}

function layerStatus(layer: LayerObservation, mode: VerityMode, scope: string, observation: NodeObservation): LayerStatus {
  const problems: string[] = [];
  const top = layer.mounts.at(-1);
  const expectedRootHash = layer.record ? signedOrRecordedRootHash(layer.record).toLowerCase() : null;
  const tableRootHash = tableRootHashOf(layer.device);
  const base = {
    id: layer.id,
    namespace: layer.record?.namespace ?? null,
    name: layer.record?.name ?? null,
    images: layer.record?.images ?? [],
    mountPoint: top?.mountPoint ?? null,
    device: layer.device ? deviceStatus(layer.device) : null,
    expectedRootHash,
    tableRootHash,
    rootHashMatches: expectedRootHash !== null && tableRootHash !== null ? expectedRootHash === tableRootHash : null,
  };
  const result = (state: LayerState): LayerStatus => ({ ...base, state, problems });

  if (!layer.record || !layer.expectation) {
    problems.push(`the metadata has no committed snapshot with id ${layer.id}`);
    return result('unexpected');
  }
  const stacked = layer.mounts.length > 1;
  if (stacked) problems.push(`${layer.mounts.length} mounts are stacked on ${top!.mountPoint}`);
  if (layer.foreignDevice) {
    problems.push(`mounted from ${top!.source}, a device-mapper device the snapshotter did not make for this layer`);
    return result('unexpected');
  }
  if (!layer.device) {
    // Mounted (there is no layer without a mount or a device) without dm-verity.
    if (mode === 'required') problems.push('mounted without dm-verity although verity = "required"');
    else problems.push(`mounted without dm-verity (verity = "${mode}"${observation.verity.available ? '' : `; ${observation.verity.reason}`})`);
    return result(mode === 'required' || stacked ? 'unexpected' : 'unverified');
  }
  const verdict = judgeVerityDevice(layer.device.observation, { ...layer.expectation, uuid: snapshotterDeviceUuid(scope, layer.id) });
  if (!top) {
    problems.push(
      verdict.state === 'corrupted'
        ? 'not mounted: the device is kept as the record of the refusal until the layer is removed'
        : 'not mounted: a leftover device the next Cleanup removes',
    );
  }
  if (verdict.state === 'mismatch') {
    problems.push(...verdict.problems);
    return result('unexpected');
  }
  if (verdict.state === 'corrupted') {
    problems.unshift(`dm-verity found a block that does not match root hash ${expectedRootHash} (status C)`);
    return result('corrupted');
  }
  return result(stacked ? 'unexpected' : 'verified');
}

function otherDeviceStatus(other: OtherDeviceObservation): OtherDeviceStatus {
  return { ...deviceStatus(other.device), mountPoints: other.mountPoints, tableRootHash: tableRootHashOf(other.device) };
}

function deviceStatus(device: DeviceObservation): DeviceStatus {
  return { name: device.name, node: device.node, status: verityHealth(device.observation.status) ?? null };
}

function tableRootHashOf(device: DeviceObservation | undefined): string | null {
  const [target] = device?.observation.table ?? [];
  return (target && parseVerityTable(target)?.rootHash) ?? null;
}
