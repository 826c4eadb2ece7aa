/** llistxattr/lgetxattr through the addon on a real filesystem, including overlay's trusted.* markers. */
import test from 'ava';
import { mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { SystemCallError } from '../../../snapshotter/core/errors.js';
import { getXattr, listXattrs } from '../../../snapshotter/native/xattr.js';
import { hostSkipReason, tempDir } from './fixture.js';

const skip = hostSkipReason();
const hostTest = skip ? test.skip : test;
if (skip) test('native xattr tests', (t) => t.pass(`skipped: ${skip}`));

function setfattr(path: string, name: string, value: string): void {
  execFileSync('setfattr', ['-h', '-n', name, '-v', value, path]);
}

hostTest('lists and reads user and trusted attributes as bytes', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'f');
  writeFileSync(file, 'x');
  setfattr(file, 'user.note', 'hello');
  setfattr(join(dir), 'trusted.overlay.opaque', 'y');
  t.deepEqual((await listXattrs(file)).sort(), ['user.note']);
  t.is((await getXattr(file, 'user.note')).toString(), 'hello');
  t.true((await listXattrs(dir)).includes('trusted.overlay.opaque'));
  t.is((await getXattr(dir, 'trusted.overlay.opaque')).toString(), 'y');
});

hostTest('an empty value and a file without attributes', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'f');
  writeFileSync(file, '');
  t.deepEqual(await listXattrs(file), []);
  execFileSync('setfattr', ['-n', 'user.empty', file]);
  t.is((await getXattr(file, 'user.empty')).length, 0);
});

hostTest('a symlink is not followed', async (t) => {
  const dir = tempDir(t);
  const target = join(dir, 'target');
  writeFileSync(target, '');
  setfattr(target, 'user.on-target', '1');
  symlinkSync('target', join(dir, 'link'));
  t.deepEqual(await listXattrs(join(dir, 'link')), []);
});

hostTest('a missing attribute and a missing file are errors with the errno name and path', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'd'));
  const missingAttr = await t.throwsAsync(getXattr(join(dir, 'd'), 'user.none'), { instanceOf: SystemCallError });
  t.is(missingAttr?.errno, 'ENODATA');
  t.is(missingAttr?.syscall, 'lgetxattr');
  const missingFile = await t.throwsAsync(listXattrs(join(dir, 'nope')), { instanceOf: SystemCallError });
  t.is(missingFile?.errno, 'ENOENT');
  t.is(missingFile?.path, join(dir, 'nope'));
});

hostTest('a file whose name is not UTF-8 is read through a Buffer path', async (t) => {
  const dir = tempDir(t);
  // argv is UTF-8 text, so setfattr works on a plain name that is then renamed to raw bytes.
  const plain = join(dir, 'plain');
  writeFileSync(plain, 'x');
  setfattr(plain, 'user.raw', 'ok');
  const raw = Buffer.concat([Buffer.from(`${dir}/`), Buffer.from([0x66, 0xff, 0xfe])]);
  renameSync(plain, raw);
  t.deepEqual(await listXattrs(raw), ['user.raw']);
  t.is((await getXattr(raw, 'user.raw')).toString(), 'ok');
});
