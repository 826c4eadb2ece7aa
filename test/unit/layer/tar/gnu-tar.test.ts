/**
 * GNU tar as a producer: archives it writes in its three formats are read
 * back and compared with Python's tarfile module member by member.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseChunks } from '../../../support/tar-events.js';
import { differencesFromOracle, readWithPythonTarfile } from '../../../support/tarfile-oracle.js';

const run = promisify(execFile);
const root = mkdtempSync(join(tmpdir(), 'gnu-tar-'));
const source = join(root, 'src');
test.after.always(() => rmSync(root, { recursive: true, force: true }));

const LONG_DIR = 'd'.repeat(120);
const SPLITTABLE = `${'p'.repeat(90)}/${'q'.repeat(60)}.txt`;
const LONG_TARGET = `${'t'.repeat(80)}/${'u'.repeat(70)}`;

/** Why GNU tar archives cannot be made here, or undefined. */
const missing = (async (): Promise<string | undefined> => {
  try {
    await run('tar', ['--version']);
    await run('mkfifo', ['--version']);
  } catch {
    return 'GNU tar or mkfifo is not installed';
  }
  mkdirSync(join(source, 'dir'), { recursive: true });
  mkdirSync(join(source, LONG_DIR));
  mkdirSync(join(source, 'p'.repeat(90)));
  mkdirSync(join(source, 'sticky'));
  chmodSync(join(source, 'sticky'), 0o1777);
  writeFileSync(join(source, 'dir/a.txt'), 'hello\n');
  writeFileSync(join(source, SPLITTABLE), 'split into prefix and name\n');
  writeFileSync(join(source, 'empty'), '');
  writeFileSync(join(source, 'big.bin'), Buffer.from(Array.from({ length: 70_001 }, (_, i) => (i * 2654435761) >>> 24)));
  writeFileSync(join(source, 'setuid'), '#!/bin/sh\n');
  chmodSync(join(source, 'setuid'), 0o4755);
  symlinkSync('dir/a.txt', join(source, 'sym'));
  symlinkSync(LONG_TARGET, join(source, 'long-sym'));
  linkSync(join(source, 'dir/a.txt'), join(source, 'hard'));
  await run('mkfifo', [join(source, 'fifo')]);
  try {
    await run('setfattr', ['-n', 'user.test', '-v', 'value1', join(source, 'dir/a.txt')]);
  } catch {
    return 'setfattr is missing or the temporary directory has no user xattrs';
  }
  return undefined;
})();

async function archive(format: string, extra: string[] = []): Promise<string> {
  const file = join(root, `${format}.tar`);
  await run('tar', [`--format=${format}`, '--sort=name', ...extra, '-cf', file, '-C', source, '.']);
  return file;
}

for (const [format, extra] of [
  ['gnu', []],
  ['posix', ['--xattrs']],
  ['ustar', [`--exclude=./${LONG_DIR}`, '--exclude=./long-sym']],
] as const) {
  test(`GNU tar --format=${format}: every member matches Python tarfile`, async (t) => {
    const reason = await missing;
    if (reason) return t.log(`skipped: ${reason}`), t.pass();
    const file = await archive(format, [...extra]);
    const ours = parseChunks(readFileSync(file));
    t.true(ours.ended);
    t.deepEqual(ours.warnings, []);
    t.deepEqual(differencesFromOracle(ours.members, await readWithPythonTarfile(file)), []);
    const paths = ours.members.map((m) => m.entry.path);
    t.true(paths.includes(`./${SPLITTABLE}`));
    t.is(ours.members.find((m) => m.entry.path === './setuid')!.entry.mode, 0o4755);
    t.is(ours.members.find((m) => m.entry.path === './sticky')!.entry.mode, 0o1777);
    t.is(ours.members.find((m) => m.entry.path === './hard')!.entry.linkTarget, './dir/a.txt');
    t.is(ours.members.find((m) => m.entry.path === './fifo')!.entry.type, 'fifo');
    t.is(ours.members.find((m) => m.entry.path === './big.bin')!.data.length, 70_001);
  });
}

test('GNU tar --format=gnu: a long directory name keeps its trailing slash, as erofs-utils 1.8.10 keeps it', async (t) => {
  const reason = await missing;
  if (reason) return t.log(`skipped: ${reason}`), t.pass();
  const ours = parseChunks(readFileSync(await archive('gnu')));
  t.true(ours.members.some((m) => m.entry.path === `./${LONG_DIR}/` && m.entry.type === 'directory'));
  t.is(ours.members.find((m) => m.entry.path === './long-sym')!.entry.linkTarget, LONG_TARGET);
});

test('GNU tar --format=posix: xattrs and fractional mtimes from PAX records', async (t) => {
  const reason = await missing;
  if (reason) return t.log(`skipped: ${reason}`), t.pass();
  const ours = parseChunks(readFileSync(await archive('posix', ['--xattrs'])));
  const file = ours.members.find((m) => m.entry.path === './dir/a.txt')!;
  t.deepEqual(file.entry.xattrs.map((x) => [x.name, Buffer.from(x.value).toString()]), [['user.test', 'value1']]);
  t.is(file.entry.mtime, Math.floor(statSync(join(source, 'dir/a.txt')).mtimeMs / 1000));
  t.true(ours.members.some((m) => m.entry.path === `./${LONG_DIR}`));
});

test('GNU tar -V: the volume label reaches onVolumeLabel and is not a member', async (t) => {
  const reason = await missing;
  if (reason) return t.log(`skipped: ${reason}`), t.pass();
  const file = join(root, 'volume.tar');
  await run('tar', ['--format=gnu', '-V', 'MYLABEL', '-cf', file, '-C', source, 'dir']);
  const ours = parseChunks(readFileSync(file));
  t.deepEqual(ours.volumeLabels, [Buffer.from('MYLABEL\0\0\0\0\0\0\0\0\0', 'latin1')]);
  t.deepEqual(ours.members.map((m) => m.entry.path), ['dir', 'dir/a.txt']);
  t.deepEqual(ours.warnings, []);
});
