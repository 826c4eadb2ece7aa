import test from 'ava';
import { IntegrityViolationError } from '../../../../snapshotter/core/errors.js';
import { childChainId } from '../../../../snapshotter/oci/chain-id.js';
import { checkLayerChain } from '../../../../snapshotter/service/pull/layer-chain.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;
const base = { digest: d('b'), diffId: d('1'), expectedDiffId: undefined, chainId: undefined, parent: '', parentChainId: undefined };

test('a bottom layer is its diff ID; a layer above, the chain of its parent and diff ID', (t) => {
  t.is(checkLayerChain({ ...base, chainId: d('1') }), d('1'));
  const chainId = childChainId(d('9'), d('1'));
  t.is(checkLayerChain({ ...base, chainId, parent: 'p', parentChainId: d('9') }), chainId);
});

test('nothing to check against: undefined, not an error', (t) => {
  t.is(checkLayerChain(base), undefined);
  t.is(checkLayerChain({ ...base, chainId: d('2'), parent: 'p' }), undefined, 'parent chain unknown');
});

test("a blob that is not the config's layer, or makes another chain, is refused naming both", (t) => {
  const wrongDiff = t.throws(() => checkLayerChain({ ...base, expectedDiffId: d('2'), chainId: d('2') }), { instanceOf: IntegrityViolationError });
  t.regex(wrongDiff!.message, new RegExp(`${d('b')} uncompresses to ${d('1')}.*lists diff ID ${d('2')}`));
  const wrongChain = t.throws(() => checkLayerChain({ ...base, chainId: d('3'), parent: 'p', parentChainId: d('9') }), { instanceOf: IntegrityViolationError });
  t.regex(wrongChain!.message, new RegExp(`not ${d('3')}`));
  t.regex(wrongChain!.hint!, /pull it again/);
});
