import test from 'ava';
import { xxh32 } from '../../../../snapshotter/layer/erofs/checksum.js';
import { OVERLAY_ORIGIN, nameFilter, splitName, writeXattrBody, xattrBodySize } from '../../../../snapshotter/layer/erofs/xattr.js';

const x = (name: string, value: string) => ({ name, value: new TextEncoder().encode(value) });

test('known prefixes become name indexes; others keep the full name', (t) => {
  t.deepEqual(splitName('user.foo'), { index: 1, suffix: 'foo' });
  t.deepEqual(splitName('system.posix_acl_access'), { index: 2, suffix: '' });
  t.deepEqual(splitName('system.posix_acl_default'), { index: 3, suffix: '' });
  t.deepEqual(splitName('trusted.overlay.opaque'), { index: 4, suffix: 'overlay.opaque' });
  t.deepEqual(splitName('security.capability'), { index: 6, suffix: 'capability' });
  t.deepEqual(splitName('foo.bar'), { index: 0, suffix: 'foo.bar' });
});

test('the body is a 12-byte header and 4-byte aligned entries in the given order', (t) => {
  const xattrs = [x('user.zeta', '26'), x('security.ima', ''), OVERLAY_ORIGIN];
  const size = xattrBodySize(xattrs);
  t.is(size, 12 + 12 + 8 + 20);
  const body = new Uint8Array(size);
  writeXattrBody(xattrs, body, 0);
  const view = new DataView(body.buffer);
  t.is(view.getUint32(0, true), nameFilter(xattrs));
  t.is(body[4], 0, 'no shared xattrs');
  t.deepEqual([...body.subarray(12, 24)], [4, 1, 2, 0, ...new TextEncoder().encode('zeta26'), 0, 0]);
  t.deepEqual([...body.subarray(24, 32)], [3, 6, 0, 0, ...new TextEncoder().encode('ima'), 0]);
  t.deepEqual([...body.subarray(32, 36)], [14, 4, 0, 0]);
  t.is(xattrBodySize([]), 0);
});

test('the name filter has the bit of each name cleared', (t) => {
  const bit = xxh32(new TextEncoder().encode('foo'), 0x25bbe08f + 1) & 31;
  t.is(nameFilter([x('user.foo', 'v')]), ~(1 << bit) >>> 0);
  t.is(nameFilter([]), 0xffffffff);
});
