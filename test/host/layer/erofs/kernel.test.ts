/**
 * The kernel as an oracle: an image from our writer is mounted (EROFS,
 * file-backed) and what the kernel shows must be the layer we fed in —
 * contents, modes, owners, links, devices, whiteouts, opaque directories,
 * xattrs, multi-block directories; Debian's fsck.erofs must accept it too.
 * Independent of the reference mkfs, so it runs wherever root and an
 * EROFS-capable kernel are.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { accessSync, constants, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DELIVERY_KIT_BUILD_TIME } from '../../../../snapshotter/layer/erofs/writer.js';
import { buildErofs } from '../../../support/erofs-build.js';
import { tar, type TarMember } from '../../../support/tar-writer.js';

const run = promisify(execFile);

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'mounting EROFS needs root';
  if (!readFileSync('/proc/filesystems', 'utf8').includes('erofs')) return 'the kernel has no EROFS support loaded';
  for (const tool of ['/usr/bin/mount', '/usr/bin/umount', '/usr/bin/getfattr', '/usr/bin/fsck.erofs']) {
    try {
      accessSync(tool, constants.X_OK);
    } catch {
      return `${tool} is not installed`;
    }
  }
  return undefined;
}
const skip = skipReason();

const big = new Uint8Array(5 * 1024 * 1024 + 3).map((_, i) => (i * 131 + (i >> 12)) & 0xff);
// Too long to sit next to its inode and xattrs: the target gets a block of its own.
const longTarget = `${'segment/'.repeat(511)}end`;
// VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE, permitted CAP_NET_BIND_SERVICE (a value the kernel accepts).
const capability = Buffer.from('0100000200040000000000000000000000000000', 'hex');
const layer: TarMember[] = [
  { path: 'etc', type: 'directory', mode: 0o751 },
  { path: 'etc/hosts', data: '127.0.0.1 localhost\n', xattrs: [['user.note', 'kept'], ['security.capability', capability]] },
  { path: 'etc/.wh.removed' },
  { path: 'big.bin', data: big, mode: 0o4755, uid: 100_000, gid: 70_000 },
  { path: 'empty', data: '' },
  { path: 'link-short', type: 'symlink', linkTarget: 'etc/hosts' },
  { path: 'link-long', type: 'symlink', linkTarget: longTarget, xattrs: [['user.pad', 'x'.repeat(200)]] },
  { path: 'hard', type: 'hardlink', linkTarget: 'big.bin' },
  { path: 'dev/null', type: 'char', mode: 0o666, devMajor: 1, devMinor: 3 },
  { path: 'dev/sda', type: 'block', mode: 0o660, devMajor: 8, devMinor: 0 },
  { path: 'dev/fifo', type: 'fifo' },
  { path: 'opt', type: 'directory', mode: 0o700 },
  { path: 'opt/.wh..wh..opq' },
  { path: 'opt/new', data: 'new\n' },
  ...Array.from({ length: 300 }, (_, i): TarMember => ({ path: `many/entry-with-a-longish-name-${String(i).padStart(4, '0')}`, data: `${i}\n` })),
];

async function xattrs(path: string): Promise<Record<string, string>> {
  const { stdout } = await run('/usr/bin/getfattr', ['--absolute-names', '--no-dereference', '-d', '-m', '-', '-e', 'hex', path]);
  const out: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const m = /^([^=#]+)=0x([0-9a-f]*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

const hex = (s: string) => Buffer.from(s).toString('hex');

(skip ? test.skip : test)('the kernel reads back the layer we wrote', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'erofs-kernel-'));
  const image = join(dir, 'layer.erofs');
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  writeFileSync(image, buildErofs(tar(layer)));
  await run('/usr/bin/fsck.erofs', [image]); // Debian's erofs-utils checks the metadata too
  await run('/usr/bin/mount', ['-t', 'erofs', '-o', 'ro', image, mnt]);
  t.teardown(async () => {
    await run('/usr/bin/umount', [mnt]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const at = (p: string) => join(mnt, p);

  t.is(lstatSync(at('etc')).mode & 0o7777, 0o751);
  t.is(readFileSync(at('etc/hosts'), 'utf8'), '127.0.0.1 localhost\n');
  t.like(await xattrs(at('etc/hosts')), { 'user.note': hex('kept'), 'security.capability': capability.toString('hex') });
  t.true(readFileSync(at('big.bin')).equals(big));
  const bigStat = lstatSync(at('big.bin'));
  t.like(bigStat, { mode: 0o104755, uid: 100_000, gid: 70_000, nlink: 2, ino: lstatSync(at('hard')).ino });
  t.is(bigStat.mtimeMs, DELIVERY_KIT_BUILD_TIME * 1000, 'every mtime is the build time');
  t.is(lstatSync(at('empty')).size, 0);
  t.is(readlinkSync(at('link-short')), 'etc/hosts');
  t.is(readlinkSync(at('link-long')), longTarget);

  t.like(lstatSync(at('dev/null')), { rdev: (1 << 8) | 3, mode: 0o020666 });
  t.true(lstatSync(at('dev/sda')).isBlockDevice());
  t.true(lstatSync(at('dev/fifo')).isFIFO());

  const whiteout = lstatSync(at('etc/removed'));
  t.true(whiteout.isCharacterDevice());
  t.is(whiteout.rdev, 0);
  t.is(whiteout.mode & 0o7777, 0);
  t.like(await xattrs(at('etc')), { 'trusted.overlay.origin': '' });
  t.like(await xattrs(at('opt')), { 'trusted.overlay.opaque': hex('y') });
  t.deepEqual(readdirSync(at('opt')), ['new']);

  const many = readdirSync(at('many'));
  t.is(many.length, 300);
  t.is(readFileSync(at('many/entry-with-a-longish-name-0299'), 'utf8'), '299\n');
  t.is(lstatSync(at('many')).size > 4096, true, 'the directory spans several blocks');
  t.is(lstatSync(mnt).nlink, 2 + ['etc', 'dev', 'opt', 'many'].length);
});

if (skip) test('kernel read-back of our EROFS images', (t) => t.pass(`skipped: ${skip}`));
