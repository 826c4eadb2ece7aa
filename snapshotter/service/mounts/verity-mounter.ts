/**
 * The snapshotter's LayerMounter: every layer through its own dm-verity
 * device (verity-device.ts) when `verity` is on and the kernel has
 * device-mapper, otherwise the plain EROFS mounter, as the mode says:
 *
 *   required  no device-mapper → every layer mount fails (FAILED_PRECONDITION)
 *   auto      no device-mapper → plain mounts, a warning per layer
 *   off       plain mounts
 *
 * Every layer, not only those of protected images: each has its hash tree
 * anyway, and a node that can check all of them should.
 *
 * A device found under a layer's name (after a restart or a crash) is used
 * only if its table is the pinned one with the expected root hash over loop
 * devices of the layer's own files, and its status is V. One that found
 * corruption (C) is refused and kept, so the refusal is visible in
 * `integrityctl status` and repeats at once for the same file; any other is
 * replaced. A mount adopted at restart whose device is C stays for the
 * containers using it, but gets no new users (check()).
 */
import { stat } from 'node:fs/promises';
import { FailedPreconditionError, IntegrityViolationError, isNotFound } from '../../core/errors.js';
import type { VerityMode } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import { dmDeviceNode, mount } from '../../native/index.js';
import { KeyedLock } from '../keyed-lock.js';
import type { LayerMounter, MountableLayer } from './manager.js';
import type { MountInfoEntry } from './mountinfo.js';
import { describeLayer } from './mountable-layer.js';
import { decideReuse, judgeVerityDevice, verityHealth, type VerityVerdict } from './verity-check.js';
import {
  createVerityDevice,
  inspectVerityDevice,
  listVerityDevices,
  removeVerityDevice,
  verifyVerityDevice,
  verityDeviceHealth,
  verityDeviceOfSource,
  verityExpectation,
  type InspectedDevice,
  type VerityAvailability,
  type VerityDevice,
  type VerityDeviceSpec,
} from './verity-device.js';
import { parseSnapshotterDeviceUuid, snapshotterDeviceUuid, verityDeviceName } from './verity-identity.js';

/** Why a layer mount was refused; the label of the refusals metric. */
export type RefusalReason = 'verity_unavailable' | 'verification_failed' | 'corrupted' | 'device_conflict';

export interface VerityMounterOptions {
  mode: VerityMode;
  /** probeVerity() at start-up. */
  availability: VerityAvailability;
  /** Mounts without dm-verity (ErofsMounter). */
  plain: LayerMounter;
  /** snapshotterScope(root): marks this daemon's devices in their uuids. */
  scope: string;
  /** The image file of layer `id`, to tell whether a corrupted device's layer is still there. */
  imageOf(id: number): string;
  logger: Logger;
  onRefusal?: (reason: RefusalReason, layer: MountableLayer) => void;
}

const READ_ONLY = ['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID'] as const;

export class VerityMounter implements LayerMounter {
  /** Whether layers go through dm-verity: the mode allows it and the kernel has it. */
  readonly verity: boolean;
  private readonly options: VerityMounterOptions;
  private readonly logger: Logger;
  /** Per device name: creating, reusing, removing one device never interleave. */
  private readonly devices = new KeyedLock();
  /** Layers already warned about being mounted without dm-verity: once per layer, not per mount. */
  private readonly warned = new Set<number>();

  constructor(options: VerityMounterOptions) {
    this.options = options;
    this.logger = options.logger;
    this.verity = options.mode !== 'off' && options.availability.available;
    if (options.mode !== 'off' && !options.availability.available) {
      const required = options.mode === 'required';
      this.logger[required ? 'error' : 'warn'](
        { verity: options.mode, reason: options.availability.reason },
        `dm-verity is not available: ${required ? 'every layer mount will be refused' : 'layers will be mounted without it'}`,
      );
    }
  }

  async mount(layer: MountableLayer, target: string): Promise<void> {
    if (!this.verity) {
      this.refuseUnverified(layer);
      if (this.options.mode === 'auto') {
        const level = this.warned.has(layer.id) ? 'debug' : 'warn';
        this.warned.add(layer.id);
        this.logger[level](
          { ...fields(layer), reason: this.unavailableReason() },
          'layer mounted WITHOUT dm-verity: it is not available (verity = "auto")',
        );
      }
      await this.options.plain.mount(layer, target);
      return;
    }
    const spec = this.spec(layer);
    await this.devices.run(spec.name, async () => {
      const device = await this.device(spec, layer);
      try {
        await mount(device.node, target, 'erofs', READ_ONLY);
      } catch (err) {
        await removeVerityDevice(spec.name).catch((e: unknown) => this.logger.warn({ ...fields(layer), err: e }, 'cannot remove a verity device'));
        throw err;
      }
      this.logger.debug({ ...fields(layer), device: spec.name, node: device.node }, 'layer mounted through dm-verity');
    });
  }

  async unmount(target: string): Promise<void> {
    const entry = (await this.options.plain.mounts()).filter((e) => e.mountPoint === target).at(-1);
    await this.options.plain.unmount(target);
    if (!entry || !this.verity) return;
    const device = await verityDeviceOfSource(entry.source);
    if (!device || !this.owns(device.uuid)) return;
    const { deferred } = await this.devices.run(device.name, () => removeVerityDevice(device.name));
    if (deferred) this.logger.info({ device: device.name, mountPoint: target }, 'verity device still open (a detached mount); the kernel removes it on last close');
  }

  mounts(): Promise<MountInfoEntry[]> {
    return this.options.plain.mounts();
  }

  /**
   * Without dm-verity, as the plain mounter says. With it: an EROFS mount of
   * the layer's own device whose table is the expected one; a corrupted one
   * counts (containers use it; check() refuses new users), any other not.
   */
  async isMountOf(entry: MountInfoEntry, layer: MountableLayer): Promise<boolean> {
    if (!this.verity) return this.options.plain.isMountOf(entry, layer);
    if (entry.fsType !== 'erofs') return false;
    const spec = this.spec(layer);
    const device = await verityDeviceOfSource(entry.source);
    if (device?.name !== spec.name) return false;
    const inspected = await inspectVerityDevice(spec.name);
    if (!inspected) return false;
    const verdict = await this.judge(inspected, spec);
    if (verdict.state === 'mismatch') {
      this.logger.warn({ ...fields(layer), device: spec.name, problems: verdict.problems }, 'layer mount is on an unexpected verity device; replacing it');
      return false;
    }
    if (verdict.state === 'corrupted') {
      this.logger.error({ ...fields(layer), device: spec.name }, 'layer mount is on a corrupted verity device (C): kept for the containers using it, refused to new ones');
    }
    return true;
  }

  async check(layer: MountableLayer, target: string): Promise<void> {
    if (!this.verity) {
      this.refuseUnverified(layer);
      return;
    }
    const name = this.spec(layer).name;
    const health = await verityDeviceHealth(name);
    if (health === 'V') return;
    if (health === 'C') throw this.refuse('corrupted', layer, corruptedError(layer, name));
    throw this.refuse('device_conflict', layer, new FailedPreconditionError(
      `${describeLayer(layer)} is mounted at ${target}, but its verity device ${name} is gone`,
      { hint: 'restart the snapshotter: start-up replaces layer mounts that are not on their verity device' },
    ));
  }

  /** check() without its refusal: the mount is on a healthy device (or plain mounts are allowed). */
  async reusable(layer: MountableLayer): Promise<boolean> {
    if (!this.verity) return this.options.mode !== 'required';
    return (await verityDeviceHealth(this.spec(layer).name)) === 'V';
  }

  /**
   * Removes this daemon's devices that nothing holds open: leftovers of a
   * crash between creating and mounting, or of a failed removal. A corrupted
   * device whose layer file is still there stays, as the record of the refusal.
   */
  async sweep(): Promise<void> {
    if (!this.verity) return;
    for (const info of await listVerityDevices()) {
      const owner = parseSnapshotterDeviceUuid(info.uuid);
      if (owner?.scope !== this.options.scope || info.openCount > 0) continue;
      await this.devices.run(info.name, async () => {
        const inspected = await inspectVerityDevice(info.name);
        if (!inspected || inspected.info.openCount > 0) return;
        if (await this.isRefusalRecord(inspected, owner.layer)) return;
        await removeVerityDevice(info.name);
        this.logger.info({ layer: owner.layer, device: info.name }, 'removed a verity device no mount uses');
      });
    }
  }

  private spec(layer: MountableLayer): VerityDeviceSpec {
    return {
      name: verityDeviceName(layer.rootHash, layer.image),
      uuid: snapshotterDeviceUuid(this.options.scope, layer.id),
      image: layer.image,
      hashTree: layer.hashTree,
      rootHash: layer.rootHash,
      layer: `${describeLayer(layer)} (${layer.image})`,
      fix: pullAgain(layer),
    };
  }

  /** The device to mount: a fitting existing one (verified again), or a new one. */
  private async device(spec: VerityDeviceSpec, layer: MountableLayer): Promise<VerityDevice> {
    const existing = await inspectVerityDevice(spec.name);
    if (existing) {
      const decision = existing.info.deferredRemove
        ? { action: 'refuse' as const, corrupted: false, why: 'it is being removed and still open (a lazily detached mount a process still uses)' }
        : decideReuse(await this.judge(existing, spec), existing.info.openCount);
      if (decision.action === 'refuse') {
        if (decision.corrupted) throw this.refuse('corrupted', layer, corruptedError(layer, spec.name));
        throw this.refuse('device_conflict', layer, new FailedPreconditionError(
          `cannot mount ${spec.layer}: device-mapper device ${spec.name} exists and cannot be used: ${decision.why}`,
          { hint: 'wait for the processes using the old mount to end, or unmount it (integrityctl layer umount) and try again' },
        ));
      }
      if (decision.action === 'reuse') {
        const device = { name: spec.name, node: await dmDeviceNode(existing.info) };
        await this.verified(() => verifyVerityDevice(device, spec), layer);
        return device;
      }
      this.logger.warn({ ...fields(layer), device: spec.name, why: decision.why }, 'replacing a verity device that is not the layer\'s');
      await removeVerityDevice(spec.name);
    }
    return this.verified(() => createVerityDevice(spec, { keepCorrupted: true }), layer);
  }

  private async verified<T>(step: () => Promise<T>, layer: MountableLayer): Promise<T> {
    try {
      return await step();
    } catch (err) {
      if (err instanceof IntegrityViolationError) throw this.refuse('verification_failed', layer, err);
      throw err;
    }
  }

  private async judge(inspected: InspectedDevice, spec: VerityDeviceSpec): Promise<VerityVerdict> {
    const expected = await verityExpectation(spec.rootHash, spec.image, spec.hashTree);
    return judgeVerityDevice(inspected.observation, { ...expected, uuid: spec.uuid ?? '' });
  }

  /** A corrupted device over the layer's current image file: what refused the layer, kept while that file is there. */
  private async isRefusalRecord(inspected: InspectedDevice, layer: number): Promise<boolean> {
    if (verityHealth(inspected.observation.status) !== 'C' || !inspected.observation.data) return false;
    try {
      const image = await stat(this.options.imageOf(layer), { bigint: true });
      return image.dev === inspected.observation.data.dev && image.ino === inspected.observation.data.ino;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** In `required` mode a kernel without device-mapper refuses every layer (only called without dm-verity). */
  private refuseUnverified(layer: MountableLayer): void {
    if (this.options.mode !== 'required') return;
    throw this.refuse('verity_unavailable', layer, new FailedPreconditionError(
      `cannot mount ${describeLayer(layer)}: verity = "required", but ${this.unavailableReason()}`,
      {
        hint:
          `${this.unavailableHint()}, then restart the snapshotter; ` +
          'or, to run layers without dm-verity on this node, set verity = "auto" (integrityctl status and the metrics report them)',
      },
    ));
  }

  private unavailableReason(): string {
    const availability = this.options.availability;
    return availability.available ? 'dm-verity is off' : availability.reason;
  }

  private unavailableHint(): string {
    const availability = this.options.availability;
    return (!availability.available && availability.hint) || 'load the modules (modprobe dm_verity)';
  }

  private refuse<E extends Error>(reason: RefusalReason, layer: MountableLayer, err: E): E {
    this.options.onRefusal?.(reason, layer);
    this.logger.error({ ...fields(layer), reason, err }, 'layer refused');
    return err;
  }

  private owns(uuid: string): boolean {
    return parseSnapshotterDeviceUuid(uuid)?.scope === this.options.scope;
  }
}

function corruptedError(layer: MountableLayer, device: string): IntegrityViolationError {
  return new IntegrityViolationError(
    `${describeLayer(layer)} is refused: its dm-verity device ${device} found a block that does not match root hash ${layer.rootHash} (status C)`,
    { hint: pullAgain(layer) },
  );
}

function pullAgain(layer: MountableLayer): string {
  return (
    `the layer's files on this node were modified: remove the image (ctr -n ${layer.namespace} images rm <image>) and pull it again; ` +
    '`integrityctl status` shows the corrupted device until the layer is removed'
  );
}

function fields(layer: MountableLayer): Record<string, unknown> {
  return { ns: layer.namespace, chainId: layer.name, layer: layer.id };
}
