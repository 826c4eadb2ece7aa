/**
 * dm-verity devices over layer files: create one from the pinned table (never
 * from anything on disk), verify it, inspect one, remove one. Both
 * `integrityctl layer mount` and the snapshotter's VerityMounter use these;
 * what a device must look like to be reused is decided in verity-check.ts.
 *
 * Creating: the image and the hash tree are attached to read-only autoclear
 * loop devices, the table is loaded read-only and resumed, and the attach
 * descriptors are closed once the table holds the loops, so the loops go
 * away with the device. Then every block of the device is read once through
 * dm-verity before anything mounts it: a wrong root hash fails on block 0, a
 * modified block anywhere fails where it is, and the device turns `C`. A layer
 * is thus mounted only if all of it matched its root hash at that moment;
 * later changes to the files fail reads (EIO) and turn the device `C`, which
 * the periodic check and `integrityctl status` report.
 */
import { open, realpath, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { IntegrityViolationError, NotFoundError, SystemCallError, isNotFound } from '../../core/errors.js';
import { verityTreeLayout } from '../../layer/verity/layout.js';
import { verityParams } from '../../layer/verity/params.js';
import { verityTarget } from '../../layer/verity/table.js';
import {
  attachLoop,
  dmCreate,
  dmDeviceNode,
  dmInfo,
  dmList,
  dmLoadTable,
  dmRemove,
  dmResume,
  dmStatus,
  dmTable,
  dmVersion,
  loopStatus,
  type AttachedLoop,
  type DmInfo,
} from '../../native/index.js';
import { parseVerityTable, verityHealth, type FileIdentity, type VerityExpectation, type VerityObservation } from './verity-check.js';
import { VERITY_DEVICE_PREFIX } from './verity-identity.js';

export interface VerityDeviceSpec {
  /** verityDeviceName(rootHash, image). */
  name: string;
  /** Snapshotter devices carry one (verity-identity.ts); '' or absent for none. */
  uuid?: string;
  /** The EROFS image and its hash tree (no superblock), absolute paths. */
  image: string;
  hashTree: string;
  /** The root hash the layer must have: the caller's trusted value, never one read from disk. */
  rootHash: string;
  /** How errors name the layer, e.g. `layer "sha256:…" in namespace "default"`. */
  layer: string;
  /** What to do when the layer fails verification; ends the error's hint. */
  fix: string;
}

export interface VerityDevice {
  name: string;
  /** /dev/dm-<minor>, what gets mounted. */
  node: string;
}

export type VerityAvailability = { available: true; version: string } | { available: false; reason: string; hint: string | undefined };

/** A device found by name, with what verity-check.ts needs to judge it. */
export interface InspectedDevice {
  info: DmInfo;
  node: string;
  observation: VerityObservation;
}

/** Reads through the device in chunks this big while verifying it. */
const VERIFY_CHUNK_BYTES = 1 << 20;
/** dm device removal right after an unmount can meet udev's probe holding the device for a moment. */
const REMOVE_ATTEMPTS = 5;
const REMOVE_BACKOFF_MS = 20;

/** Whether this kernel has device-mapper, and why not (probed once at start-up). */
export async function probeVerity(): Promise<VerityAvailability> {
  try {
    return { available: true, version: (await dmVersion()).join('.') };
  } catch (err) {
    const e = err as { message?: string; hint?: string };
    return { available: false, reason: e.message ?? String(err), hint: e.hint };
  }
}

/**
 * Creates, loads, resumes and verifies the device. On any failure nothing is
 * left behind, except that with `keepCorrupted` a device that failed
 * verification stays (status C), as the evidence `integrityctl status` shows
 * and so that the next mount of the same file is refused at once.
 */
export async function createVerityDevice(spec: VerityDeviceSpec, options: { keepCorrupted: boolean }): Promise<VerityDevice> {
  const dataBlocks = await checkLayerFiles(spec);
  const loops: AttachedLoop[] = [];
  let created = false;
  let device: VerityDevice;
  try {
    for (const file of [spec.image, spec.hashTree]) loops.push(await attachLoop(file, { readOnly: true, autoclear: true }));
    const target = verityTarget({ dataDevice: loops[0]!.device, hashDevice: loops[1]!.device, dataBlocks, rootHash: spec.rootHash });
    await dmCreate(spec.name, spec.uuid ? { uuid: spec.uuid } : {});
    created = true;
    await dmLoadTable(spec.name, [target], { readOnly: true });
    device = { name: spec.name, node: await dmDeviceNode(await dmResume(spec.name)) };
  } catch (err) {
    if (created) await removeVerityDevice(spec.name).catch(() => undefined);
    throw err;
  } finally {
    // The table holds the loops now (or nothing does, and autoclear frees them).
    for (const loop of loops) await loop.close();
  }
  try {
    await verifyVerityDevice(device, spec);
  } catch (err) {
    if (!(err instanceof IntegrityViolationError && options.keepCorrupted)) await removeVerityDevice(spec.name).catch(() => undefined);
    throw err;
  }
  return device;
}

/**
 * Reads every block through dm-verity. A block that does not match becomes
 * an IntegrityViolationError naming the layer, the block and the root hash.
 */
export async function verifyVerityDevice(device: VerityDevice, spec: VerityDeviceSpec): Promise<void> {
  const handle = await open(device.node, 'r');
  try {
    const buffer = Buffer.allocUnsafe(VERIFY_CHUNK_BYTES);
    for (let position = 0; ; ) {
      let bytesRead: number;
      try {
        ({ bytesRead } = await handle.read(buffer, 0, buffer.length, position));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EIO') throw err;
        throw verificationFailure(spec, await firstBadBlock(handle, position), err);
      }
      if (bytesRead === 0) return;
      position += bytesRead;
    }
  } finally {
    await handle.close();
  }
}

/** Stats both files and checks that the hash tree has the size the image's block count gives it. Returns the block count. */
export async function checkLayerFiles(spec: Pick<VerityDeviceSpec, 'image' | 'hashTree' | 'layer'>): Promise<number> {
  const [image, tree] = await Promise.all([spec.image, spec.hashTree].map((file) => statFile(file, spec.layer)));
  const { dataBlockBytes, hashBlockBytes } = verityParams;
  if (image!.size === 0 || image!.size % dataBlockBytes !== 0) {
    throw new IntegrityViolationError(
      `${spec.layer}: image ${spec.image} has ${image!.size} bytes, not a positive whole number of ${dataBlockBytes}-byte blocks`,
      { hint: 'layer images are always block-aligned: the file was truncated or appended to; convert or pull the layer again' },
    );
  }
  const dataBlocks = image!.size / dataBlockBytes;
  const treeBytes = verityTreeLayout(dataBlocks).hashBlocks * hashBlockBytes;
  if (tree!.size !== treeBytes) {
    throw new IntegrityViolationError(
      `${spec.layer}: hash tree ${spec.hashTree} has ${tree!.size} bytes, but the tree of a ${dataBlocks}-block image has ${treeBytes}`,
      { hint: 'the hash tree is not this image\'s or was truncated; recompute it (integrityctl layer verity <image> --hash-file <file>) or pull the layer again' },
    );
  }
  return dataBlocks;
}

/** What a device for `rootHash` over these files must look like; a file that is gone has no identity. */
export async function verityExpectation(rootHash: string, image: string, hashTree: string): Promise<VerityExpectation> {
  const [imageStat, treeStat] = await Promise.all([statIfPresent(image), statIfPresent(hashTree)]);
  return {
    rootHash,
    dataBlocks: imageStat ? Math.floor(imageStat.size / verityParams.dataBlockBytes) : 0,
    image: imageStat && { dev: imageStat.dev, ino: imageStat.ino },
    hashTree: treeStat && { dev: treeStat.dev, ino: treeStat.ino },
  };
}

/** The device called `name` with its table, status and loop backing files, or undefined if there is none. */
export async function inspectVerityDevice(name: string): Promise<InspectedDevice | undefined> {
  let info: DmInfo;
  try {
    info = await dmInfo(name);
  } catch (err) {
    if (err instanceof SystemCallError && err.errno === 'ENXIO') return undefined;
    throw err;
  }
  const [table, status] = await Promise.all([dmTable(name), dmStatus(name)]);
  const fields = table.length === 1 ? parseVerityTable(table[0]!) : undefined;
  const [data, hash] = fields ? await Promise.all([loopBacking(fields.dataDevice), loopBacking(fields.hashDevice)]) : [undefined, undefined];
  return { info, node: `/dev/dm-${info.minor}`, observation: { uuid: info.uuid, table, status, data, hash } };
}

/** Every device-mapper device whose name is one of ours (verity-identity.ts), with its info. */
export async function listVerityDevices(): Promise<DmInfo[]> {
  const infos: DmInfo[] = [];
  for (const device of await dmList()) {
    if (!device.name.startsWith(VERITY_DEVICE_PREFIX)) continue;
    try {
      infos.push(await dmInfo(device.name));
    } catch (err) {
      // Removed between the list and the look: nothing to report.
      if (!(err instanceof SystemCallError && err.errno === 'ENXIO')) throw err;
    }
  }
  return infos;
}

/** V or C, or undefined when the device is gone or not a single verity target. */
export async function verityDeviceHealth(name: string): Promise<'V' | 'C' | undefined> {
  try {
    return verityHealth(await dmStatus(name));
  } catch (err) {
    if (err instanceof SystemCallError && err.errno === 'ENXIO') return undefined;
    throw err;
  }
}

/**
 * Removes the device; its loop devices go with it (autoclear). A device still
 * open after a few tries (a lazily detached mount a process still uses) is
 * removed deferred: the kernel drops it on its last close. A device that is
 * already gone is fine.
 */
export async function removeVerityDevice(name: string): Promise<{ deferred: boolean }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await dmRemove(name, { deferred: attempt > REMOVE_ATTEMPTS });
    } catch (err) {
      if (err instanceof SystemCallError && err.errno === 'ENXIO') return { deferred: false };
      if (!(err instanceof SystemCallError && err.errno === 'EBUSY' && attempt <= REMOVE_ATTEMPTS)) throw err;
    }
    await sleep(REMOVE_BACKOFF_MS * attempt);
  }
}

/** The dm device a mount's source names (/dev/dm-<minor>), if it is one of ours. */
export async function verityDeviceOfSource(source: string): Promise<DmInfo | undefined> {
  const m = /^\/dev\/dm-(\d+)$/.exec(source);
  if (!m) return undefined;
  const minor = Number(m[1]);
  return (await listVerityDevices()).find((d) => d.minor === minor);
}

/** The first block from `position` on that fails to read: where the chunk's EIO came from. */
async function firstBadBlock(handle: Awaited<ReturnType<typeof open>>, position: number): Promise<number> {
  const block = Buffer.allocUnsafe(verityParams.dataBlockBytes);
  for (let offset = position; offset < position + VERIFY_CHUNK_BYTES; offset += block.length) {
    try {
      const { bytesRead } = await handle.read(block, 0, block.length, offset);
      if (bytesRead === 0) break;
    } catch {
      return offset / block.length;
    }
  }
  return position / block.length;
}

function verificationFailure(spec: VerityDeviceSpec, block: number, cause: unknown): IntegrityViolationError {
  const why =
    block === 0
      ? 'so either the root hash is not this layer\'s, or the layer or its hash tree was modified'
      : 'so the layer file or its hash tree was modified after the root hash was computed';
  return new IntegrityViolationError(
    `dm-verity refuses ${spec.layer}: its data block ${block} does not match expected root hash ${spec.rootHash.toLowerCase()}, ${why}`,
    { hint: spec.fix, cause },
  );
}

/** st_dev/st_ino of the file behind loop device `majorMinor` (as a dm table prints it), if it is a bound loop device. */
async function loopBacking(majorMinor: string): Promise<FileIdentity | undefined> {
  let name: string;
  try {
    name = basename(await realpath(`/sys/dev/block/${majorMinor}`));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  if (!/^loop\d+$/.test(name)) return undefined;
  try {
    const status = await loopStatus(`/dev/${name}`);
    return { dev: status.backingDevice, ino: status.backingInode };
  } catch (err) {
    if (err instanceof SystemCallError && (err.errno === 'ENXIO' || err.errno === 'ENOENT')) return undefined;
    throw err;
  }
}

async function statFile(file: string, layer: string) {
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new NotFoundError(`${layer}: ${file} is not a regular file`, { hint: 'give the layer image and its hash tree file' });
    return st;
  } catch (err) {
    if (!isNotFound(err)) throw err;
    throw new NotFoundError(`${layer}: ${file} does not exist`, { hint: 'check the path; the layer image and its hash tree are both needed', cause: err });
  }
}

async function statIfPresent(file: string) {
  try {
    return await stat(file, { bigint: true }).then((st) => ({ size: Number(st.size), dev: st.dev, ino: st.ino }));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}
