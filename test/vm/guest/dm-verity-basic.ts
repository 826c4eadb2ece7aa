/**
 * Guest program: the native addon's device-mapper calls against a real
 * dm-verity device, in the VM (the host kernel has no device-mapper).
 *
 *   node dm-verity-basic.js <report.json>
 *
 * Builds an EROFS image (mkfs.erofs), hashes it with veritysetup (the oracle
 * for the root hash only: every device is made through our facade), attaches
 * read-only autoclear loops, creates the verity device from the pinned table,
 * mounts it, reads, flips one byte of the image and reads again; then a
 * device with a wrong root hash, a deferred remove, and the errors. It records
 * what it saw and leaves the judging to the host test (test/vm/native/), so a
 * wrong observation is a precise assertion there. Exits non-zero only when a
 * step could not run. Import only its types: loading it runs it.
 */
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout } from 'node:timers/promises';
import { SystemCallError } from '../../../snapshotter/core/errors.js';
import { verityTable, verityTarget } from '../../../snapshotter/layer/verity/table.js';
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
  dmSuspend,
  dmTable,
  dmVersion,
  DM_NAME_MAX_BYTES,
  DM_UUID_MAX_BYTES,
  loopStatus,
  mount,
  unmount,
  type AttachedLoop,
  type DmTarget,
} from '../../../snapshotter/native/index.js';
import { makeErofsImage } from '../../support/mkfs-erofs.js';
import { veritysetupFormat } from '../../support/veritysetup.js';
import { dropCaches, errnoOf, flipByte, readHead } from '../support/guest-io.js';

export interface DmVerityBasicReport {
  dmVersion: number[];
  rootHash: string;
  table: string;
  infoAfterLoad: { activeTable: boolean; inactiveTable: boolean; readOnly: boolean };
  infoAfterResume: { activeTable: boolean; inactiveTable: boolean; readOnly: boolean; suspended: boolean };
  suspendedAfterSuspend: boolean;
  suspendedAfterResume: boolean;
  node: string;
  /** dmTable's params: the kernel prints devices as major:minor. */
  tableParams: string;
  loopDevices: string[];
  /** major:minor of the loop devices, as the table should name them. */
  loopNumbers: string[];
  listed: boolean;
  openCountMounted: number;
  readBeforeMatches: boolean;
  statusBefore: string;
  removeWhileMountedError: string;
  createTwiceError: string;
  writableVerityError: string;
  readAfterError: string;
  firstBlockAfterMatches: boolean;
  statusAfter: string;
  removeDeferred: boolean;
  infoAfterRemoveError: string;
  infoAfterRemoveMessage: string;
  /** Loop devices after the dm device let go of them: unbound, or bound to a file that is not ours. */
  loopsFreed: boolean;
  wrongRoot: { mountError: string; readError: string; status: string };
  deferred: { removeDeferred: boolean; infoWhileOpen: boolean; goneAfterClose: boolean };
  /** Answers bigger than the first 16 KiB buffer (DM_BUFFER_FULL_FLAG, then a retry). */
  bigAnswers: { devicesCreated: number; devicesListed: number; targetsLoaded: number; targetsRead: number; lastTarget: DmTarget | undefined };
}

const NAME = 'integrity-test-verity';
const WRONG = 'integrity-test-wrong-root';
const DEFERRED = 'integrity-test-deferred';
const HELLO = 'hello through dm-verity\n';
// 1000 lines of 24 bytes: six 4 KiB blocks, none inlined; the target line sits in a middle one.
const DATA = Array.from({ length: 1000 }, (_, i) => `dm-verity line ${String(i).padStart(8, '0')}\n`).join('');
const TARGET_LINE = 'dm-verity line 00000500\n';

async function verityStatus(name: string): Promise<string> {
  const [only] = await dmStatus(name);
  return only?.params ?? 'no target';
}

/** Removes dm devices and closes loops this run made, whatever state it stopped in. */
class Cleanup {
  private readonly steps: (() => Promise<unknown>)[] = [];
  add(step: () => Promise<unknown>): void {
    this.steps.unshift(step);
  }
  async run(): Promise<void> {
    for (const step of this.steps) await step().catch(() => undefined);
  }
}

async function attach(cleanup: Cleanup, file: string): Promise<AttachedLoop> {
  const loop = await attachLoop(file, { readOnly: true, autoclear: true });
  cleanup.add(() => loop.close());
  return loop;
}

async function main(): Promise<void> {
  const reportPath = process.argv[2];
  if (!reportPath) throw new Error('usage: dm-verity-basic.js <report.json>');
  const work = mkdtempSync('/tmp/dm-verity-basic-');
  const cleanup = new Cleanup();
  cleanup.add(async () => rmSync(work, { recursive: true, force: true }));
  try {
    const image = await makeErofsImage(join(work, 'layer.erofs'), join(work, 'source'), { 'hello.txt': HELLO, 'data.txt': DATA });
    const hashFile = join(work, 'layer.verity');
    const oracle = await veritysetupFormat(image, hashFile);
    if (!oracle.rootHash) throw new Error(`veritysetup format failed:\n${oracle.output}`);
    const rootHash = oracle.rootHash;
    const dataBlocks = statSync(image).size / 4096;

    const version = await dmVersion();
    const data = await attach(cleanup, image);
    const hash = await attach(cleanup, hashFile);
    const loopNumbers = [data, hash].map((loop) => `7:${loop.number}`);
    const tableInput = { dataDevice: data.device, hashDevice: hash.device, dataBlocks, rootHash };
    const table = verityTable(tableInput);

    await dmCreate(NAME, { uuid: `INTEGRITY-TEST-${NAME}` });
    cleanup.add(() => dmRemove(NAME));
    const createTwiceError = await errnoOf(() => dmCreate(NAME));
    const writableVerityError = await errnoOf(() => dmLoadTable(NAME, [verityTarget(tableInput)], { readOnly: false }));
    const loaded = await dmLoadTable(NAME, [verityTarget(tableInput)], { readOnly: true });
    const resumed = await dmResume(NAME);
    // The table holds both loop devices now; with autoclear they go when it does.
    await data.close();
    await hash.close();
    const suspendedAfterSuspend = (await dmSuspend(NAME)).suspended;
    const suspendedAfterResume = (await dmResume(NAME)).suspended;

    const node = await dmDeviceNode(resumed);
    const [tableTarget] = await dmTable(NAME);
    const listed = (await dmList()).some((device) => device.name === NAME && device.minor === resumed.minor);

    const mountpoint = join(work, 'mnt');
    mkdirSync(mountpoint);
    await mount(node, mountpoint, 'erofs', ['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID']);
    cleanup.add(() => unmount(mountpoint, ['MNT_DETACH']));
    const dataFile = join(mountpoint, 'data.txt');
    const readBeforeMatches = readFileSync(join(mountpoint, 'hello.txt'), 'utf8') === HELLO && readFileSync(dataFile, 'utf8') === DATA;
    const statusBefore = await verityStatus(NAME);
    const openCountMounted = (await dmInfo(NAME)).openCount;
    const removeWhileMountedError = await errnoOf(() => dmRemove(NAME));

    const imageBytes = readFileSync(image);
    const flipAt = imageBytes.indexOf(TARGET_LINE);
    if (flipAt < 0 || imageBytes.indexOf(TARGET_LINE, flipAt + 1) >= 0) throw new Error(`the line to corrupt is not exactly once in ${image}`);
    flipByte(image, flipAt);
    dropCaches();
    const readAfterError = await errnoOf(() => readFileSync(dataFile));
    const firstBlockAfterMatches = readHead(dataFile, 4096).toString('utf8') === DATA.slice(0, 4096);
    const statusAfter = await verityStatus(NAME);

    await unmount(mountpoint);
    const removed = await dmRemove(NAME);
    const infoAfterRemove = await dmInfo(NAME).then(
      () => ({ errno: 'none', message: '' }),
      (err: SystemCallError) => ({ errno: err.errno, message: err.message }),
    );
    const loopsFreed = await loopsLetGo([data.device, hash.device], image, hashFile);

    flipByte(image, flipAt); // intact again: only the root hash is wrong below
    const wrongRoot = await withWrongRoot(cleanup, image, hashFile, dataBlocks, rootHash, work);
    const deferred = await deferredRemove(cleanup, image, hashFile, dataBlocks, rootHash);
    const bigAnswers = await answersBeyondOneBuffer(cleanup);

    const report: DmVerityBasicReport = {
      dmVersion: version,
      rootHash,
      table,
      infoAfterLoad: { activeTable: loaded.activeTable, inactiveTable: loaded.inactiveTable, readOnly: loaded.readOnly },
      infoAfterResume: {
        activeTable: resumed.activeTable,
        inactiveTable: resumed.inactiveTable,
        readOnly: resumed.readOnly,
        suspended: resumed.suspended,
      },
      suspendedAfterSuspend,
      suspendedAfterResume,
      node,
      tableParams: tableTarget?.params ?? '',
      loopDevices: [data.device, hash.device],
      loopNumbers,
      listed,
      openCountMounted,
      readBeforeMatches,
      statusBefore,
      removeWhileMountedError,
      createTwiceError,
      writableVerityError,
      readAfterError,
      firstBlockAfterMatches,
      statusAfter,
      removeDeferred: removed.deferred,
      infoAfterRemoveError: infoAfterRemove.errno,
      infoAfterRemoveMessage: infoAfterRemove.message,
      loopsFreed,
      wrongRoot,
      deferred,
      bigAnswers,
    };
    writeFileSync(reportPath, JSON.stringify(report, null, 2));
    console.log(JSON.stringify(report));
  } finally {
    await cleanup.run();
  }
}

async function loopsLetGo(devices: string[], ...files: string[]): Promise<boolean> {
  const ours = new Set(files.map((file) => statSync(file, { bigint: true }).ino));
  for (const device of devices) {
    const status = await loopStatus(device).catch(() => undefined);
    if (status && ours.has(status.backingInode)) return false;
  }
  return true;
}

/** A table with one hex digit of the root hash changed: it loads, but nothing reads. */
async function withWrongRoot(
  cleanup: Cleanup,
  image: string,
  hashFile: string,
  dataBlocks: number,
  rootHash: string,
  work: string,
): Promise<DmVerityBasicReport['wrongRoot']> {
  const wrongHash = (rootHash[0] === '0' ? '1' : '0') + rootHash.slice(1);
  const data = await attach(cleanup, image);
  const hash = await attach(cleanup, hashFile);
  const target = verityTarget({ dataDevice: data.device, hashDevice: hash.device, dataBlocks, rootHash: wrongHash });
  await dmCreate(WRONG);
  cleanup.add(() => dmRemove(WRONG));
  await dmLoadTable(WRONG, [target], { readOnly: true });
  const info = await dmResume(WRONG);
  await data.close();
  await hash.close();
  const node = await dmDeviceNode(info);
  const mountpoint = join(work, 'wrong');
  mkdirSync(mountpoint);
  const mountError = await errnoOf(() => mount(node, mountpoint, 'erofs', ['MS_RDONLY']));
  if (mountError === 'none') await unmount(mountpoint);
  dropCaches();
  const readError = await errnoOf(() => readHead(node, 4096));
  const status = await verityStatus(WRONG);
  await dmRemove(WRONG);
  return { mountError, readError, status };
}

/** DM_DEFERRED_REMOVE on an open device: it stays until the last close, then goes. */
async function deferredRemove(
  cleanup: Cleanup,
  image: string,
  hashFile: string,
  dataBlocks: number,
  rootHash: string,
): Promise<DmVerityBasicReport['deferred']> {
  const data = await attach(cleanup, image);
  const hash = await attach(cleanup, hashFile);
  const target = verityTarget({ dataDevice: data.device, hashDevice: hash.device, dataBlocks, rootHash });
  await dmCreate(DEFERRED);
  cleanup.add(() => dmRemove(DEFERRED));
  await dmLoadTable(DEFERRED, [target], { readOnly: true });
  const node = await dmDeviceNode(await dmResume(DEFERRED));
  await data.close();
  await hash.close();
  const fd = openSync(node, 'r');
  let removeDeferred: boolean;
  let infoWhileOpen: boolean;
  try {
    removeDeferred = (await dmRemove(DEFERRED, { deferred: true })).deferred;
    infoWhileOpen = (await dmInfo(DEFERRED)).deferredRemove;
  } finally {
    closeSync(fd);
  }
  let goneAfterClose = false;
  for (let i = 0; i < 40 && !goneAfterClose; i++) {
    goneAfterClose = (await errnoOf(() => dmInfo(DEFERRED))) === 'ENXIO';
    if (!goneAfterClose) await setTimeout(50);
  }
  return { removeDeferred, infoWhileOpen, goneAfterClose };
}

/** 64 devices with the longest names and uuids, and a table of 400 targets: each answer outgrows 16 KiB. */
async function answersBeyondOneBuffer(cleanup: Cleanup): Promise<DmVerityBasicReport['bigAnswers']> {
  const names = Array.from({ length: 64 }, (_, i) => `integrity-test-many-${String(i).padStart(3, '0')}-`.padEnd(DM_NAME_MAX_BYTES, 'n'));
  for (const name of names) {
    await dmCreate(name, { uuid: `INTEGRITY-${name}`.slice(0, DM_UUID_MAX_BYTES) });
    cleanup.add(() => dmRemove(name));
  }
  const listed = new Set((await dmList()).map((device) => device.name));
  const targets: DmTarget[] = Array.from({ length: 400 }, (_, i) => ({ start: i * 8, length: 8, type: 'error', params: '' }));
  const [first] = names;
  await dmLoadTable(first!, targets, { readOnly: true });
  await dmResume(first!);
  const read = await dmTable(first!);
  for (const name of names) await dmRemove(name);
  return {
    devicesCreated: names.length,
    devicesListed: names.filter((name) => listed.has(name)).length,
    targetsLoaded: targets.length,
    targetsRead: read.length,
    lastTarget: read.at(-1),
  };
}

await main();
