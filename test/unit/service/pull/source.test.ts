import test from 'ava';
import {
  claimedChainId,
  commitSource,
  CRI_IMAGE_REF_LABEL,
  CRI_LAYER_DIGEST_LABEL,
  CRI_MANIFEST_DIGEST_LABEL,
  prepareSource,
  SNAPSHOT_REF_LABEL,
} from '../../../../snapshotter/service/pull/source.js';

const CHAIN = `sha256:${'c'.repeat(64)}`;
const BLOB = `sha256:${'b'.repeat(64)}`;
const MANIFEST = `sha256:${'a'.repeat(64)}`;

test("containerd's unpacker (CRI labels): an unpack on the fast path, every fact read", (t) => {
  const labels = {
    [SNAPSHOT_REF_LABEL]: CHAIN,
    [CRI_LAYER_DIGEST_LABEL]: BLOB,
    [CRI_MANIFEST_DIGEST_LABEL]: MANIFEST,
    [CRI_IMAGE_REF_LABEL]: 'registry.example/app:1',
  };
  t.deepEqual(prepareSource(`k8s.io/7/extract-123-abc ${CHAIN}`, labels), {
    kind: 'unpack',
    fastPath: true,
    layer: { chainId: CHAIN, layerDigest: BLOB, imageRef: 'registry.example/app:1', manifestDigest: MANIFEST },
  });
});

test('ctr import (image.Unpack): no labels, the chain ID from the key, never the fast path', (t) => {
  t.deepEqual(prepareSource(`default/3/extract-987-xyz ${CHAIN}`, {}), {
    kind: 'unpack',
    fastPath: false,
    layer: { chainId: CHAIN, layerDigest: undefined, imageRef: undefined, manifestDigest: undefined },
  });
});

test('a container, a build step, a conformance case: other', (t) => {
  t.deepEqual(prepareSource('k8s.io/12/3f2a9c0e', {}), { kind: 'other' });
  t.deepEqual(prepareSource('prepare-1', { l: 'v' }), { kind: 'other' });
  t.deepEqual(prepareSource('k8s.io/12/my-extract-thing', {}), { kind: 'other' });
});

test('malformed digests are not taken for facts', (t) => {
  const source = prepareSource('x', { [SNAPSHOT_REF_LABEL]: 'sha256:short', [CRI_LAYER_DIGEST_LABEL]: 'md5:abc' });
  t.deepEqual(source, { kind: 'unpack', fastPath: false, layer: { chainId: undefined, layerDigest: undefined, imageRef: undefined, manifestDigest: undefined } });
});

test('Commit: the label, else the chain ID in the name containerd gives committed layers', (t) => {
  t.is(commitSource(`k8s.io/9/${CHAIN}`, {}).chainId, CHAIN);
  t.is(commitSource(CHAIN, {}).chainId, CHAIN);
  t.is(commitSource('k8s.io/9/some-name', {}).chainId, undefined);
  t.is(commitSource('k8s.io/9/some-name', { [SNAPSHOT_REF_LABEL]: CHAIN }).chainId, CHAIN);
  t.is(claimedChainId(`default/4/${CHAIN}`, {}), CHAIN);
});
