import test from 'ava';
import { InvalidArgumentError } from '../../../snapshotter/core/errors.js';
import { formatLayerRootHashes, parseLayerRootHashes } from '../../../snapshotter/oci/annotations.js';

const H1 = '1'.repeat(64);
const H2 = 'ab'.repeat(32);

test('layer root hashes: comma-separated, in layer order, round trip', (t) => {
  t.is(formatLayerRootHashes([H1, H2]), `${H1},${H2}`);
  t.deepEqual(parseLayerRootHashes(`${H1},${H2}`, 2, 'img'), [H1, H2]);
  t.deepEqual(parseLayerRootHashes('', 0, 'img'), []);
});

test('layer root hashes: wrong count or malformed entries are refused, naming the entry', (t) => {
  t.throws(() => parseLayerRootHashes(`${H1},${H2}`, 3, 'img'), { instanceOf: InvalidArgumentError, message: /lists 2 root hashes for 3 layers/ });
  t.throws(() => parseLayerRootHashes(`${H1},${H2.toUpperCase()}`, 2, 'img'), { message: /entry 2 is not 64 lowercase hex/ });
  t.throws(() => parseLayerRootHashes(`${H1}, ${H2}`, 2, 'img'), { message: /entry 2/ });
  t.throws(() => parseLayerRootHashes(`${H1},`, 2, 'img'), { message: /entry 2/ });
});
