/**
 * Commit from a directory with the real pipeline: an upper dir as overlay
 * leaves it (whiteouts, opaque dirs, overlay's private xattrs, hard links,
 * owners) becomes layer.erofs + layer.verity; fsck.erofs accepts the image,
 * veritysetup computes the same tree, and the kernel shows what the upper dir held.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, linkSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { silentLogger } from '../../../../snapshotter/core/log.js';
import { getXattr, listXattrs, mount, unmount } from '../../../../snapshotter/native/index.js';
import { ErofsLayerStore } from '../../../../snapshotter/service/layers/erofs-store.js';
import { readXattrs } from '../../../../snapshotter/service/layers/xattrs.js';
import { veritysetupFormat, veritysetupMissing } from '../../../support/veritysetup.js';
import { nativeAddonMissing } from '../../../support/native-addon.js';

const FSCK = '/usr/bin/fsck.erofs';

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (whiteout devices, trusted.* xattrs, mount)';
  const noVerity = veritysetupMissing();
  if (noVerity) return noVerity;
  try {
    execFileSync(FSCK, ['--help'], { stdio: 'ignore' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `${FSCK} is not installed (Debian package erofs-utils)`;
  }
  return nativeAddonMissing();
}

const skip = skipReason();
const hostTest = skip ? test.skip : test;
if (skip) test('commit from a directory', (t) => t.pass(`skipped: ${skip}`));

function setfattr(path: string, name: string, value: string): void {
  execFileSync('setfattr', ['-h', '-n', name, '-v', value, path]);
}

/** An upper dir the way overlay leaves it after a container changed its lower layers. */
function overlayUpper(dir: string): void {
  mkdirSync(join(dir, 'etc'), { mode: 0o755 });
  writeFileSync(join(dir, 'etc', 'hosts'), 'mydomain 10.0.0.2\n', { mode: 0o644 });
  setfattr(join(dir, 'etc', 'hosts'), 'trusted.overlay.origin', 'copied-up');
  setfattr(join(dir, 'etc'), 'trusted.overlay.impure', 'y');
  execFileSync('mknod', [join(dir, 'etc', 'removed'), 'c', '0', '0']);
  mkdirSync(join(dir, 'lib'), { mode: 0o700 });
  setfattr(join(dir, 'lib'), 'trusted.overlay.opaque', 'y');
  writeFileSync(join(dir, 'lib', 'not-hidden'), '');
  mkdirSync(join(dir, 'opt', 'a'), { recursive: true, mode: 0o700 });
  chownSync(join(dir, 'opt'), 1, 1);
  writeFileSync(join(dir, 'opt', 'a', 'file.txt'), 'hello');
  chownSync(join(dir, 'opt', 'a', 'file.txt'), 1000, 1000);
  linkSync(join(dir, 'opt', 'a', 'file.txt'), join(dir, 'opt', 'link.txt'));
  symlinkSync('../etc/hosts', join(dir, 'opt', 'hosts'));
  writeFileSync(join(dir, 'big'), Buffer.alloc(5 << 20, 0x5a));
  setfattr(join(dir, 'big'), 'user.note', 'kept');
  execFileSync('mkfifo', [join(dir, 'pipe')]);
}

function workdir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'commit-dir-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

hostTest('an overlay upper dir becomes a valid EROFS layer with the same tree', async (t) => {
  const dir = workdir(t);
  const upper = join(dir, 'fs');
  const layerDir = join(dir, 'layer');
  const mnt = join(dir, 'mnt');
  mkdirSync(upper);
  chmodSync(upper, 0o751);
  mkdirSync(layerDir);
  mkdirSync(mnt);
  overlayUpper(upper);

  const store = new ErofsLayerStore({ xattrs: readXattrs, logger: silentLogger });
  const layer = await store.commitDirectory(upper, layerDir);
  const image = join(layerDir, 'layer.erofs');
  const tree = join(layerDir, 'layer.verity');

  await promisify(execFile)(FSCK, [image]);
  const oracle = await veritysetupFormat(image, join(dir, 'oracle.verity'));
  t.is(oracle.status, 0, oracle.output);
  t.is(layer.rootHash, oracle.rootHash!);
  t.true((await readFile(tree)).equals(await readFile(join(dir, 'oracle.verity'))));
  t.is(layer.usage.inodes, 12, 'the hard link counts once');
  t.true(layer.usage.size >= (5 << 20));

  await mount(image, mnt, 'erofs', ['MS_RDONLY']);
  t.teardown(() => unmount(mnt, ['MNT_DETACH']).catch(() => undefined));
  t.is(lstatSync(mnt).mode & 0o7777, 0o751, "the upper dir's root is the layer's root");
  t.is(readFileSync(join(mnt, 'etc', 'hosts'), 'utf8'), 'mydomain 10.0.0.2\n');
  const whiteout = lstatSync(join(mnt, 'etc', 'removed'));
  t.true(whiteout.isCharacterDevice());
  t.is(whiteout.rdev, 0);
  t.is(lstatSync(join(mnt, 'lib')).mode & 0o7777, 0o700);
  t.is((await getXattr(join(mnt, 'lib'), 'trusted.overlay.opaque')).toString(), 'y');
  t.false((await listXattrs(join(mnt, 'etc', 'hosts'))).some((n) => n === 'trusted.overlay.origin'));
  t.false((await listXattrs(join(mnt, 'etc'))).some((n) => n === 'trusted.overlay.impure'));
  t.is((await getXattr(join(mnt, 'big'), 'user.note')).toString(), 'kept');
  const opt = lstatSync(join(mnt, 'opt'));
  t.deepEqual([opt.uid, opt.gid], [1, 1]);
  const file = lstatSync(join(mnt, 'opt', 'a', 'file.txt'));
  t.deepEqual([file.uid, file.gid, file.nlink], [1000, 1000, 2]);
  t.is(lstatSync(join(mnt, 'opt', 'link.txt')).ino, file.ino);
  t.is(readlinkSync(join(mnt, 'opt', 'hosts')), '../etc/hosts');
  t.true(lstatSync(join(mnt, 'pipe')).isFIFO());
  t.true(readFileSync(join(mnt, 'big')).equals(Buffer.alloc(5 << 20, 0x5a)));
});

hostTest('a failed build leaves no layer files', async (t) => {
  const dir = workdir(t);
  mkdirSync(join(dir, 'layer'));
  const store = new ErofsLayerStore({ xattrs: readXattrs, logger: silentLogger });
  await t.throwsAsync(store.commitDirectory(join(dir, 'missing'), join(dir, 'layer')));
  t.deepEqual(readdirSync(join(dir, 'layer')), []);
});
