import test from 'ava';
import { InvalidArgumentError } from '../../../../snapshotter/core/errors.js';
import { verityTable, verityTarget } from '../../../../snapshotter/layer/verity/table.js';

const root = '4392712ba01368efdf14b05c76f9e4df0d53664630b5d48632ed17a137f39076';

test('the example table of the kernel documentation (verity.rst)', (t) => {
  t.is(
    verityTable({
      dataDevice: '/dev/sda1',
      hashDevice: '/dev/sda2',
      dataBlocks: 262144,
      hashStartBlock: 1,
      rootHash: root,
      salt: '1234000000000000000000000000000000000000000000000000000000000000',
    }),
    `0 2097152 verity 1 /dev/sda1 /dev/sda2 4096 4096 262144 1 sha256 ${root} 1234000000000000000000000000000000000000000000000000000000000000`,
  );
});

test('defaults: pinned salt, tree from block 0 of a separate hash device', (t) => {
  t.is(
    verityTable({ dataDevice: '7:3', hashDevice: '/dev/loop4', dataBlocks: 129, rootHash: root.toUpperCase() }),
    `0 1032 verity 1 7:3 /dev/loop4 4096 4096 129 0 sha256 ${root} dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b`,
  );
});

test('the same table as a DM_TABLE_LOAD target: sectors, type, the parameters after them', (t) => {
  t.deepEqual(verityTarget({ dataDevice: '7:3', hashDevice: '/dev/loop4', dataBlocks: 129, rootHash: root.toUpperCase() }), {
    start: 0,
    length: 1032,
    type: 'verity',
    params: `1 7:3 /dev/loop4 4096 4096 129 0 sha256 ${root} dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b`,
  });
});

test('no salt is written as -', (t) => {
  for (const salt of ['', '-']) {
    t.is(
      verityTable({ dataDevice: 'a', hashDevice: 'b', dataBlocks: 1, rootHash: root, salt }),
      `0 8 verity 1 a b 4096 4096 1 0 sha256 ${root} -`,
    );
  }
});

test('values that would corrupt the table are refused', (t) => {
  const good = { dataDevice: '/dev/loop0', hashDevice: '/dev/loop1', dataBlocks: 1, rootHash: root };
  const bad = [
    { ...good, dataDevice: '' },
    { ...good, hashDevice: '/dev/loop1 0' },
    { ...good, dataBlocks: 0 },
    { ...good, dataBlocks: 1.5 },
    { ...good, dataBlocks: Number.MAX_SAFE_INTEGER },
    { ...good, hashStartBlock: -1 },
    { ...good, rootHash: root.slice(2) },
    { ...good, rootHash: `${root.slice(2)}zz` },
    { ...good, salt: 'xyz' },
  ];
  for (const input of bad) t.throws(() => verityTable(input), { instanceOf: InvalidArgumentError }, JSON.stringify(input));
});
