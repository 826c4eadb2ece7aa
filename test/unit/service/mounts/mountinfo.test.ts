import test from 'ava';
import { parseMountInfo } from '../../../../snapshotter/service/mounts/mountinfo.js';

test('fields, optional fields and octal escapes', (t) => {
  const text = [
    '36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue',
    '512 30 7:3 / /var/lib/ci/m/17 ro,nodev,nosuid shared:300 - erofs /dev/loop3 ro,user_xattr,acl,cache_strategy=readaround',
    '513 30 0:77 / /tmp/with\\040space\\134and\\011tab rw - erofs /srv/layer\\040files/layer.erofs ro',
    '514 30 0:78 / /x rw - tmpfs tmpfs',
    '',
  ].join('\n');
  t.deepEqual(parseMountInfo(text), [
    { id: 36, parentId: 35, root: '/mnt1', mountPoint: '/mnt2', fsType: 'ext3', source: '/dev/root', superOptions: 'rw,errors=continue' },
    { id: 512, parentId: 30, root: '/', mountPoint: '/var/lib/ci/m/17', fsType: 'erofs', source: '/dev/loop3', superOptions: 'ro,user_xattr,acl,cache_strategy=readaround' },
    { id: 513, parentId: 30, root: '/', mountPoint: '/tmp/with space\\and\ttab', fsType: 'erofs', source: '/srv/layer files/layer.erofs', superOptions: 'ro' },
    { id: 514, parentId: 30, root: '/', mountPoint: '/x', fsType: 'tmpfs', source: 'tmpfs', superOptions: '' },
  ]);
});

test("this process's own mount table parses", async (t) => {
  const { readFile } = await import('node:fs/promises');
  const entries = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  t.true(entries.some((e) => e.mountPoint === '/'));
  t.true(entries.every((e) => e.fsType !== '' && Number.isInteger(e.id)));
});
