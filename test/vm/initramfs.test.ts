import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeNewcCpio } from './support/cpio.js';
import { BUSYBOX, guestModuleFiles, isStaticElf } from './support/initramfs.js';
import {
  compareKernelVersions,
  findGuestKernel,
  GUEST_MODULES,
  moduleName,
  parseModulesDep,
  readModuleIndex,
  resolveModuleLoadOrder,
} from './support/kernel.js';
import { extractVmlinux, hasPvhNote } from './support/vmlinux.js';

const kernel = findGuestKernel();
const withKernel = 'version' in kernel ? test : test.skip;

test('the cpio archive unpacks with GNU cpio to the same files, links and device nodes', (t) => {
  const archive = writeNewcCpio([
    { type: 'dir', path: 'bin' },
    { type: 'file', path: 'bin/tool', data: Buffer.from('#!/bin/sh\n'), mode: 0o755 },
    { type: 'file', path: 'odd', data: Buffer.from('12345') }, // data needing padding
    { type: 'file', path: 'empty', data: Buffer.alloc(0) },
    { type: 'symlink', path: 'bin/sh', target: 'tool' },
    { type: 'dir', path: 'dev' },
    { type: 'chardev', path: 'dev/console', major: 5, minor: 1 },
  ]);
  const listing = execFileSync('cpio', ['-t', '-v', '--quiet'], { input: archive, encoding: 'utf8' });
  t.regex(listing, /^crw------- .* 5,\s+1 .* dev\/console$/m);

  const dir = mkdtempSync(join(tmpdir(), 'cpio-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('cpio', ['-i', '-d', '--quiet', '--no-absolute-filenames', '-D', dir], { input: archive });
  t.is(readFileSync(join(dir, 'bin/tool'), 'utf8'), '#!/bin/sh\n');
  t.is(statSync(join(dir, 'bin/tool')).mode & 0o777, 0o755);
  t.is(readFileSync(join(dir, 'odd'), 'utf8'), '12345');
  t.is(readFileSync(join(dir, 'empty')).length, 0);
  t.is(readlinkSync(join(dir, 'bin/sh')), 'tool');
});

test('cpio member paths may not escape the archive root', (t) => {
  t.throws(() => writeNewcCpio([{ type: 'dir', path: '../etc' }]), { message: /bad member path/ });
});

test('module load order puts dependencies first, loads each once, skips built-ins and rejects unknowns', (t) => {
  const modulesDep = parseModulesDep(
    [
      'kernel/drivers/md/dm-verity.ko.xz: kernel/drivers/md/dm-bufio.ko.xz kernel/drivers/md/dm-mod.ko.xz',
      'kernel/drivers/md/dm-bufio.ko.xz: kernel/drivers/md/dm-mod.ko.xz',
      'kernel/drivers/md/dm-mod.ko.xz:',
      'kernel/fs/erofs/erofs.ko.xz: kernel/lib/libcrc32c.ko.xz',
    ].join('\n'),
  );
  const index = { modulesDep, builtin: new Set(['libcrc32c']) };
  t.deepEqual(resolveModuleLoadOrder(index, ['dm-verity', 'dm_mod', 'erofs']), [
    'kernel/drivers/md/dm-mod.ko.xz',
    'kernel/drivers/md/dm-bufio.ko.xz',
    'kernel/drivers/md/dm-verity.ko.xz',
    'kernel/fs/erofs/erofs.ko.xz',
  ]);
  t.throws(() => resolveModuleLoadOrder(index, ['nonexistent']), { message: /nonexistent/ });
  const cyclic = { modulesDep: parseModulesDep('a.ko: b.ko\nb.ko: a.ko\n'), builtin: new Set<string>() };
  t.throws(() => resolveModuleLoadOrder(cyclic, ['a']), { message: /cycle/ });
});

test('kernel versions sort like sort -V', (t) => {
  const versions = ['6.10.0-1-amd64', '6.1.0-57-amd64', '5.10.0-30-amd64', '6.1.0-9-amd64', '6.1.0-57-cloud-amd64'];
  t.deepEqual([...versions].sort(compareKernelVersions), [
    '5.10.0-30-amd64',
    '6.1.0-9-amd64',
    '6.1.0-57-amd64',
    '6.1.0-57-cloud-amd64',
    '6.10.0-1-amd64',
  ]);
});

withKernel('the guest kernel provides every guest module, and the load order satisfies modules.dep', (t) => {
  if (!('version' in kernel)) return;
  const files = guestModuleFiles(kernel);
  const names = files.map(moduleName);
  t.is(new Set(names).size, names.length);
  const { modulesDep, builtin } = readModuleIndex(kernel.moduleDir);
  for (const wanted of GUEST_MODULES) t.true(names.includes(wanted) || builtin.has(wanted), wanted);
  names.forEach((name, i) => {
    for (const dep of modulesDep.get(name)?.deps ?? []) t.true(names.indexOf(moduleName(dep)) < i, `${dep} before ${name}`);
  });
});

withKernel('the bzImage payload is an ELF vmlinux with a PVH entry, so qemu can skip the decompressor', (t) => {
  if (!('version' in kernel)) return;
  const extracted = extractVmlinux(readFileSync(kernel.image));
  if ('reason' in extracted) return t.fail(extracted.reason);
  t.true(hasPvhNote(extracted.elf));
  t.deepEqual(extractVmlinux(Buffer.alloc(4096)), { reason: 'not a bzImage' });
});

(existsSync(BUSYBOX) ? test : test.skip)('busybox for the initramfs must be static', (t) => {
  t.true(isStaticElf(BUSYBOX));
  t.false(isStaticElf(process.execPath));
});
