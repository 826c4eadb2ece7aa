import test from 'ava';
import { OPAQUE_MARKER, classifyName } from '../../../../snapshotter/layer/tar/whiteout.js';

test('names are plain, whiteouts or the opaque marker', (t) => {
  t.deepEqual(classifyName('passwd'), { kind: 'plain' });
  t.deepEqual(classifyName('.wh.passwd'), { kind: 'whiteout', target: 'passwd' });
  t.deepEqual(classifyName(OPAQUE_MARKER), { kind: 'opaque' });
  t.deepEqual(classifyName('.wh..wh.x'), { kind: 'whiteout', target: '.wh.x' });
  t.deepEqual(classifyName('.wh'), { kind: 'plain' });
  t.deepEqual(classifyName('x.wh.y'), { kind: 'plain' });
});
