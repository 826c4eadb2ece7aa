import test from 'ava';
import { createHash } from 'node:crypto';
import { chainIds, childChainId } from '../../../snapshotter/oci/chain-id.js';

const d = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;

test('the bottom layer is named by its diff ID, each layer above by sha256 of "<parent> <diffId>"', (t) => {
  const ids = chainIds([d(1), d(2), d(3)]);
  t.is(ids[0], d(1));
  t.is(ids[1], `sha256:${createHash('sha256').update(`${d(1)} ${d(2)}`).digest('hex')}`);
  t.is(ids[2], `sha256:${createHash('sha256').update(`${ids[1]} ${d(3)}`).digest('hex')}`);
  t.is(childChainId(ids[1]!, d(3)), ids[2]!);
  t.is(childChainId(undefined, d(7)), d(7));
});

test('the image-spec example: the same diff IDs in another order give other chain IDs', (t) => {
  t.not(chainIds([d(1), d(2)])[1], chainIds([d(2), d(1)])[1]);
  t.deepEqual(chainIds([]), []);
});
