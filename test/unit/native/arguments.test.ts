/** Bad arguments are refused in TypeScript, before the addon is even loaded. */
import test from 'ava';
import { InvalidArgumentError } from '../../../snapshotter/core/errors.js';
import { checkFlags } from '../../../snapshotter/native/call.js';
import { dmCreate, dmInfo, dmLoadTable, type DmTarget } from '../../../snapshotter/native/dm.js';
import { attachLoop } from '../../../snapshotter/native/loop.js';
import { mount, MountFlags, unmount } from '../../../snapshotter/native/mount.js';

const target: DmTarget = { start: 0, length: 8, type: 'verity', params: '1 7:0 7:1 4096 4096 1 0 sha256 00 -' };

test('dm device names must fit the kernel field and not be paths', async (t) => {
  for (const name of ['', 'a/b', '.', '..', 'x'.repeat(128), 'nul\0byte']) {
    await t.throwsAsync(dmInfo(name), { instanceOf: InvalidArgumentError }, JSON.stringify(name));
  }
  await t.throwsAsync(dmCreate('ok', { uuid: 'u'.repeat(129) }), { instanceOf: InvalidArgumentError, message: /128 bytes/ });
});

test('dm tables need whole, non-empty targets', async (t) => {
  const bad: [string, unknown][] = [
    ['no targets', []],
    ['fractional start', [{ ...target, start: 0.5 }]],
    ['negative length', [{ ...target, length: -8 }]],
    ['zero length', [{ ...target, length: 0 }]],
    ['long type', [{ ...target, type: 'x'.repeat(16) }]],
    ['NUL in params', [{ ...target, params: 'a\0b' }]],
    ['not a table', 'verity'],
  ];
  for (const [what, targets] of bad) {
    await t.throwsAsync(dmLoadTable('ok', targets as DmTarget[], { readOnly: true }), { instanceOf: InvalidArgumentError }, what);
  }
});

test('mount and loop arguments are checked', async (t) => {
  await t.throwsAsync(mount('', '/mnt', 'erofs'), { instanceOf: InvalidArgumentError, message: /mount source/ });
  await t.throwsAsync(mount('/a', '/mnt', 'erofs', [], 'x\0y'), { instanceOf: InvalidArgumentError, message: /NUL/ });
  await t.throwsAsync(unmount('/mnt', -1), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(attachLoop(undefined as unknown as string), { instanceOf: InvalidArgumentError });
});

test('named flags combine into the kernel number', (t) => {
  t.is(checkFlags(['MS_RDONLY', 'MS_NODEV', 'MS_NOSUID'], MountFlags, 'mount flag'), 1 | 4 | 2);
  t.is(checkFlags(['MS_REC', 'MS_PRIVATE'], MountFlags, 'mount flag'), 16384 | 262144);
  t.is(checkFlags(0x200000, MountFlags, 'mount flag'), MountFlags.MS_RELATIME);
  t.throws(() => checkFlags(['MS_RDONLY', 'ro' as 'MS_RDONLY'], MountFlags, 'mount flag'), {
    instanceOf: InvalidArgumentError,
    message: 'unknown mount flag "ro"',
  });
});
