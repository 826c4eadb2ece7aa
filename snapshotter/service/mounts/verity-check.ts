/**
 * Is a dm-verity device the one a layer needs, and is it healthy? Pure: the
 * caller reads the live table, the status and the loop devices' backing files
 * (verity-device.ts) and says what it expects; the same judgement serves
 * reusing a device, `integrityctl status` and the periodic check.
 *
 * The expected table is the pinned one (layer/verity/params.ts) with the
 * expected root hash, so a device whose table was built from other parameters
 * (another salt, a corruption mode such as ignore_corruption, another root
 * hash) is never taken for the layer's.
 */
import { SECTOR_BYTES, verityParams } from '../../layer/verity/params.js';
import type { DmTarget } from '../../native/index.js';

/** st_dev and st_ino of a file, as fs.stat(path, { bigint: true }) and LOOP_GET_STATUS64 report them. */
export interface FileIdentity {
  dev: bigint;
  ino: bigint;
}

export interface VerityExpectation {
  rootHash: string;
  dataBlocks: number;
  /** The layer image and hash tree files; undefined when a file is gone. */
  image: FileIdentity | undefined;
  hashTree: FileIdentity | undefined;
  /** The device's uuid, when it matters who made it ('' = none). */
  uuid?: string;
}

export interface VerityObservation {
  uuid: string;
  /** The live table (DM_TABLE_STATUS with DM_STATUS_TABLE_FLAG). */
  table: readonly DmTarget[];
  /** DM_TABLE_STATUS. */
  status: readonly DmTarget[];
  /** Backing files of the table's data and hash devices; undefined when a device is not a bound loop device. */
  data: FileIdentity | undefined;
  hash: FileIdentity | undefined;
}

/** A verity table line's parameters as the kernel prints them (devices as major:minor). */
export interface VerityTableFields {
  version: number;
  dataDevice: string;
  hashDevice: string;
  dataBlockBytes: number;
  hashBlockBytes: number;
  dataBlocks: number;
  hashStartBlock: number;
  algorithm: string;
  rootHash: string;
  salt: string;
  /** Optional arguments after the salt (e.g. ignore_corruption); ours have none. */
  optional: string[];
}

/** V: every block read so far verified. C: a block failed (kernel: v->hash_failed), sticky until the device goes. */
export type VerityHealth = 'V' | 'C';

export type VerityVerdict =
  | { state: 'verified'; tableRootHash: string }
  | { state: 'corrupted'; tableRootHash: string }
  /** Not the layer's device: the problems say why; the table's root hash when it has one. */
  | { state: 'mismatch'; problems: string[]; tableRootHash: string | undefined };

export type ReuseDecision =
  | { action: 'reuse' }
  | { action: 'recreate'; why: string }
  | { action: 'refuse'; corrupted: boolean; why: string };

export function parseVerityTable(target: DmTarget): VerityTableFields | undefined {
  if (target.type !== 'verity') return undefined;
  const f = target.params.trim().split(/\s+/);
  if (f.length < 10) return undefined;
  const numbers = [f[0], f[3], f[4], f[5], f[6]].map(Number);
  if (!numbers.every((n) => Number.isSafeInteger(n) && n >= 0)) return undefined;
  return {
    version: numbers[0]!,
    dataDevice: f[1]!,
    hashDevice: f[2]!,
    dataBlockBytes: numbers[1]!,
    hashBlockBytes: numbers[2]!,
    dataBlocks: numbers[3]!,
    hashStartBlock: numbers[4]!,
    algorithm: f[7]!,
    rootHash: f[8]!.toLowerCase(),
    salt: f[9]!.toLowerCase(),
    optional: f.slice(10),
  };
}

/** V or C from a verity status; undefined when the status is not one verity target's. */
export function verityHealth(status: readonly DmTarget[]): VerityHealth | undefined {
  if (status.length !== 1 || status[0]!.type !== 'verity') return undefined;
  const first = status[0]!.params.trim().split(/\s+/)[0];
  return first === 'V' || first === 'C' ? first : undefined;
}

/**
 * The table must be exactly the pinned one for this layer over loop devices
 * backed by the layer's own files. Only then does its status mean anything
 * about the layer: C is "corrupted", V "verified".
 */
export function judgeVerityDevice(observed: VerityObservation, expected: VerityExpectation): VerityVerdict {
  const problems: string[] = [];
  if (expected.uuid !== undefined && observed.uuid !== expected.uuid) {
    problems.push(`its uuid is ${JSON.stringify(observed.uuid)}, not ${JSON.stringify(expected.uuid)}: another tool made it`);
  }
  const [target] = observed.table;
  const fields = target && observed.table.length === 1 ? parseVerityTable(target) : undefined;
  if (!target || !fields) {
    problems.push(`its table is not one verity target (${describeTable(observed.table)})`);
    return { state: 'mismatch', problems, tableRootHash: undefined };
  }
  const want = expected.rootHash.toLowerCase();
  if (fields.rootHash !== want) problems.push(`its table checks root hash ${fields.rootHash}, not the expected ${want}`);
  const sectors = expected.dataBlocks * (verityParams.dataBlockBytes / SECTOR_BYTES);
  const pinned: [string, unknown, unknown][] = [
    ['start sector', target.start, 0],
    ['length in sectors', target.length, sectors],
    ['format version', fields.version, verityParams.format],
    ['data block size', fields.dataBlockBytes, verityParams.dataBlockBytes],
    ['hash block size', fields.hashBlockBytes, verityParams.hashBlockBytes],
    ['data block count', fields.dataBlocks, expected.dataBlocks],
    ['hash start block', fields.hashStartBlock, 0],
    ['hash algorithm', fields.algorithm, verityParams.hashAlgorithm],
    ['salt', fields.salt, verityParams.saltHex],
  ];
  for (const [what, have, wanted] of pinned) {
    if (have !== wanted) problems.push(`its ${what} is ${String(have)}, not ${String(wanted)}`);
  }
  if (fields.optional.length > 0) problems.push(`its table has optional arguments (${fields.optional.join(' ')}); ours have none`);
  problems.push(...backingProblems('data', observed.data, expected.image, 'the layer image'));
  problems.push(...backingProblems('hash', observed.hash, expected.hashTree, 'the layer hash tree'));
  const health = verityHealth(observed.status);
  if (health === undefined) problems.push(`its status is not a verity status (${describeTable(observed.status)})`);
  if (problems.length > 0 || health === undefined) return { state: 'mismatch', problems, tableRootHash: fields.rootHash };
  return { state: health === 'V' ? 'verified' : 'corrupted', tableRootHash: fields.rootHash };
}

/**
 * What to do with a device found under the layer's name before mounting it:
 * a verified one is used as it is; a corrupted one is refused (its layer file
 * failed verification, and a new device over the same file would fail again);
 * any other is replaced, unless something holds it open.
 */
export function decideReuse(verdict: VerityVerdict, openCount: number): ReuseDecision {
  switch (verdict.state) {
    case 'verified':
      return { action: 'reuse' };
    case 'corrupted':
      return { action: 'refuse', corrupted: true, why: 'dm-verity has already found a block that does not match the root hash (status C)' };
    case 'mismatch': {
      const why = verdict.problems.join('; ');
      if (openCount > 0) return { action: 'refuse', corrupted: false, why: `${why}; and it is open (${openCount}), so it cannot be replaced` };
      return { action: 'recreate', why };
    }
  }
}

function backingProblems(role: 'data' | 'hash', have: FileIdentity | undefined, want: FileIdentity | undefined, file: string): string[] {
  if (want === undefined) return [`${file} file is gone`];
  if (have === undefined) return [`its ${role} device is not a loop device bound to a file`];
  if (have.dev !== want.dev || have.ino !== want.ino) return [`its ${role} device reads another file than ${file}`];
  return [];
}

function describeTable(targets: readonly DmTarget[]): string {
  if (targets.length === 0) return 'no targets';
  return targets.map((t) => `${t.start} ${t.length} ${t.type}`).join(', ');
}
