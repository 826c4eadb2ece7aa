import test from 'ava';
import { InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import { dataBlocksOf, verityTreeLayout } from '../../../../snapshotter/layer/verity/layout.js';

// Hand-derived: 128 digests per hash block, levels stored top level first.
const cases = [
  { dataBlocks: 1, levelBlocks: [], levelStart: [], hashBlocks: 0 },
  { dataBlocks: 2, levelBlocks: [1], levelStart: [0], hashBlocks: 1 },
  { dataBlocks: 128, levelBlocks: [1], levelStart: [0], hashBlocks: 1 },
  { dataBlocks: 129, levelBlocks: [2, 1], levelStart: [1, 0], hashBlocks: 3 },
  { dataBlocks: 16384, levelBlocks: [128, 1], levelStart: [1, 0], hashBlocks: 129 },
  { dataBlocks: 16385, levelBlocks: [129, 2, 1], levelStart: [3, 1, 0], hashBlocks: 132 },
  { dataBlocks: 128 ** 3 + 1, levelBlocks: [16385, 129, 2, 1], levelStart: [132, 3, 1, 0], hashBlocks: 16517 },
];

for (const expected of cases) {
  test(`layout of ${expected.dataBlocks} data blocks`, (t) => {
    t.deepEqual(verityTreeLayout(expected.dataBlocks), expected);
  });
}

test('no tree without data', (t) => {
  for (const bad of [0, -1, 1.5, Number.NaN]) t.throws(() => verityTreeLayout(bad), { instanceOf: InvalidArgumentError });
});

test('data sizes must be whole blocks, and at least one', (t) => {
  t.is(dataBlocksOf(4096, 'x'), 1);
  t.is(dataBlocksOf(4096 * 129, 'x'), 129);
  const empty = t.throws(() => dataBlocksOf(0, 'layer.erofs'), { instanceOf: InvalidArgumentError });
  t.regex(empty!.message, /layer\.erofs is empty/);
  const ragged = t.throws(() => dataBlocksOf(5000, 'layer.erofs'), { instanceOf: InvalidArgumentError });
  t.regex(ragged!.message, /layer\.erofs is 5000 bytes, not a multiple/);
  t.regex(ragged!.hint!, /last 904 bytes unprotected/);
  t.throws(() => dataBlocksOf(-4096, 'x'), { instanceOf: InvalidArgumentError });
});
