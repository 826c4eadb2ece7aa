import test from 'ava';
import { layerReferences } from '../../../../snapshotter/service/mounts/reconcile.js';

test('every active snapshot and view references each layer below it; committed ones nothing', (t) => {
  const refs = layerReferences([
    { id: 1, kind: 'committed', parentIds: [] },
    { id: 2, kind: 'committed', parentIds: [1] },
    { id: 3, kind: 'active', parentIds: [2, 1] },
    { id: 4, kind: 'view', parentIds: [2, 1] },
    { id: 5, kind: 'view', parentIds: [1] },
    { id: 6, kind: 'active', parentIds: [] },
  ]);
  t.deepEqual([...refs].sort(([a], [b]) => a - b), [
    [1, 3],
    [2, 2],
  ]);
});
