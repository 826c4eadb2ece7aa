import test from 'ava';
import { verityParams } from '../../../../snapshotter/layer/verity/params.js';
import { verityTarget } from '../../../../snapshotter/layer/verity/table.js';
import type { DmTarget } from '../../../../snapshotter/native/index.js';
import {
  decideReuse,
  judgeVerityDevice,
  parseVerityTable,
  verityHealth,
  type VerityExpectation,
  type VerityObservation,
} from '../../../../snapshotter/service/mounts/verity-check.js';

const ROOT = '3c'.repeat(32);
const IMAGE = { dev: 2049n, ino: 1001n };
const TREE = { dev: 2049n, ino: 1002n };
const expected: VerityExpectation = { rootHash: ROOT, dataBlocks: 300, image: IMAGE, hashTree: TREE };

/** What the kernel prints for our table: the same line with the loop devices as major:minor. */
function liveTable(overrides: Partial<{ rootHash: string; dataBlocks: number; salt: string; extra: string }> = {}): DmTarget[] {
  const target = verityTarget({ dataDevice: '7:0', hashDevice: '7:1', dataBlocks: overrides.dataBlocks ?? 300, rootHash: overrides.rootHash ?? ROOT, ...(overrides.salt ? { salt: overrides.salt } : {}) });
  return [{ ...target, params: target.params + (overrides.extra ?? '') }];
}

function observed(overrides: Partial<VerityObservation> = {}): VerityObservation {
  return { uuid: '', table: liveTable(), status: [{ start: 0, length: 2400, type: 'verity', params: 'V' }], data: IMAGE, hash: TREE, ...overrides };
}

const corrupt: DmTarget[] = [{ start: 0, length: 2400, type: 'verity', params: 'C' }];

test('the kernel\'s table line parses into the pinned fields', (t) => {
  t.deepEqual(parseVerityTable(liveTable()[0]!), {
    version: 1,
    dataDevice: '7:0',
    hashDevice: '7:1',
    dataBlockBytes: 4096,
    hashBlockBytes: 4096,
    dataBlocks: 300,
    hashStartBlock: 0,
    algorithm: 'sha256',
    rootHash: ROOT,
    salt: verityParams.saltHex,
    optional: [],
  });
  t.is(parseVerityTable({ start: 0, length: 8, type: 'linear', params: '7:0 0' }), undefined);
  t.is(parseVerityTable({ start: 0, length: 8, type: 'verity', params: '1 7:0 7:1 4096' }), undefined);
});

test('status V or C; anything else is no verity status', (t) => {
  t.is(verityHealth([{ start: 0, length: 8, type: 'verity', params: 'V' }]), 'V');
  t.is(verityHealth([{ start: 0, length: 8, type: 'verity', params: 'C 1 2' }]), 'C', 'newer kernels may append fields');
  t.is(verityHealth([{ start: 0, length: 8, type: 'verity', params: 'X' }]), undefined);
  t.is(verityHealth([]), undefined);
  t.is(verityHealth([{ start: 0, length: 8, type: 'linear', params: 'V' }]), undefined);
});

test('the expected table over the layer\'s own files is verified with V and corrupted with C', (t) => {
  t.deepEqual(judgeVerityDevice(observed(), expected), { state: 'verified', tableRootHash: ROOT });
  t.deepEqual(judgeVerityDevice(observed({ status: corrupt }), expected), { state: 'corrupted', tableRootHash: ROOT });
  t.is(judgeVerityDevice(observed(), { ...expected, rootHash: ROOT.toUpperCase() }).state, 'verified', 'hex case does not matter');
});

const mismatches: Array<[string, Partial<VerityObservation>, Partial<VerityExpectation>, RegExp]> = [
  ['another root hash', { table: liveTable({ rootHash: 'ab'.repeat(32) }) }, {}, /checks root hash abab.*, not the expected 3c3c/],
  ['another block count', { table: liveTable({ dataBlocks: 301 }) }, {}, /length in sectors is 2408, not 2400; its data block count is 301, not 300/],
  ['another salt', { table: liveTable({ salt: '00' }) }, {}, /its salt is 00, not dc0f/],
  ['no salt', { table: liveTable({ salt: '-' }) }, {}, /its salt is -, not dc0f/],
  ['a corruption mode', { table: liveTable({ extra: ' 1 ignore_corruption' }) }, {}, /optional arguments \(1 ignore_corruption\)/],
  ['another target type', { table: [{ start: 0, length: 2400, type: 'linear', params: '7:0 0' }] }, {}, /not one verity target \(0 2400 linear\)/],
  ['no table', { table: [] }, {}, /not one verity target \(no targets\)/],
  ['two targets', { table: [...liveTable(), ...liveTable()] }, {}, /not one verity target/],
  ['a data device reading another file', { data: { dev: 2049n, ino: 9n } }, {}, /data device reads another file than the layer image/],
  ['a hash device that is no bound loop', { hash: undefined }, {}, /hash device is not a loop device bound to a file/],
  ['a layer image that is gone', {}, { image: undefined }, /the layer image file is gone/],
  ['an unreadable status', { status: [] }, {}, /status is not a verity status/],
  ['another uuid', { uuid: 'CRYPT-VERITY-x' }, { uuid: 'containerd-integrity:0123456789abcdef:3' }, /uuid is "CRYPT-VERITY-x", not "containerd-integrity:/],
];

for (const [what, observation, expectation, problem] of mismatches) {
  test(`not the layer's device: ${what}`, (t) => {
    const verdict = judgeVerityDevice(observed(observation), { ...expected, ...expectation });
    t.is(verdict.state, 'mismatch');
    if (verdict.state === 'mismatch') t.regex(verdict.problems.join('; '), problem);
  });
}

test('a mismatched device is not called corrupted, even when its status is C', (t) => {
  const verdict = judgeVerityDevice(observed({ table: liveTable({ rootHash: 'ab'.repeat(32) }), status: corrupt }), expected);
  t.like(verdict, { state: 'mismatch', tableRootHash: 'ab'.repeat(32) });
});

test('reuse: a verified device as it is, a corrupted one never, another one replaced unless it is open', (t) => {
  t.deepEqual(decideReuse({ state: 'verified', tableRootHash: ROOT }, 1), { action: 'reuse' });
  t.like(decideReuse({ state: 'corrupted', tableRootHash: ROOT }, 0), { action: 'refuse', corrupted: true });
  t.like(decideReuse({ state: 'corrupted', tableRootHash: ROOT }, 2), { action: 'refuse', corrupted: true });
  t.deepEqual(decideReuse({ state: 'mismatch', problems: ['a', 'b'], tableRootHash: undefined }, 0), { action: 'recreate', why: 'a; b' });
  const open = decideReuse({ state: 'mismatch', problems: ['a'], tableRootHash: undefined }, 1);
  t.like(open, { action: 'refuse', corrupted: false });
  if (open.action === 'refuse') t.regex(open.why, /^a; and it is open \(1\), so it cannot be replaced$/);
});
