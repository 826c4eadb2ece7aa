/** Loop devices on the real kernel: attach, mount through them, autoclear, status, errors. */
import test, { type ExecutionContext } from 'ava';
import { closeSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { setTimeout } from 'node:timers/promises';
import { join } from 'node:path';
import { InvalidArgumentError, SystemCallError } from '../../../snapshotter/core/errors.js';
import { loadNative } from '../../../snapshotter/native/loader.js';
import { attachLoop, detachLoop, LoopFlags, loopStatus, type AttachedLoop } from '../../../snapshotter/native/loop.js';
import { mount, unmount } from '../../../snapshotter/native/mount.js';
import { hostSkipReason, image, mountPoint, tempDir } from './fixture.js';

const skip = hostSkipReason();
const hostTest = skip ? test.skip : test;
if (skip) test('native loop tests', (t) => t.pass(`skipped: ${skip}`));

const TREE = { 'hello.txt': 'hello from erofs\n', 'dir/big.bin': Buffer.alloc(64 * 1024, 0x5a) };

/** Closes the attach descriptor at teardown if the test did not. */
function held(t: ExecutionContext, loop: AttachedLoop): AttachedLoop {
  t.teardown(() => loop.close());
  return loop;
}

/**
 * Autoclear runs when the last opener lets go; give the kernel a moment. Other
 * tests (and other processes) may bind the freed device again at once, so
 * "freed" means: unbound, or bound to some other file.
 */
async function expectFreed(t: ExecutionContext, device: string, file: string): Promise<void> {
  const ours = await stat(file, { bigint: true });
  const deadline = Date.now() + 2000;
  for (;;) {
    try {
      const status = await loopStatus(device);
      if (status.backingInode !== ours.ino || status.backingDevice !== ours.dev) {
        t.pass();
        return;
      }
    } catch (err) {
      t.true(err instanceof SystemCallError && err.errno === 'ENXIO', String(err));
      return;
    }
    if (Date.now() > deadline) {
      t.fail(`${device} is still bound to ${file}`);
      return;
    }
    await setTimeout(50);
  }
}

hostTest('a read-only autoclear loop serves an EROFS mount and frees itself on unmount', async (t) => {
  const file = await image(t, TREE);
  const target = mountPoint(t);
  const loop = held(t, await attachLoop(file, { readOnly: true, autoclear: true }));
  t.regex(loop.device, /^\/dev\/loop\d+$/);
  t.is(loop.device, `/dev/loop${loop.number}`);

  const status = await loopStatus(loop.device);
  const backing = await stat(file, { bigint: true });
  t.is(status.backingFile, file);
  t.is(status.fileName, file);
  t.is(status.number, loop.number);
  t.is(status.backingDevice, backing.dev);
  t.is(status.backingInode, backing.ino);
  t.is(status.offset, 0n);
  t.deepEqual(status.flags, { readOnly: true, autoclear: true, partscan: false, directIo: false });

  await mount(loop.device, target, 'erofs', ['MS_RDONLY']);
  await loop.close(); // the mount holds the device now
  t.is((await loopStatus(loop.device)).backingFile, file, 'still bound while mounted');
  t.is(readFileSync(join(target, 'hello.txt'), 'utf8'), TREE['hello.txt']);
  t.deepEqual(readFileSync(join(target, 'dir/big.bin')), TREE['dir/big.bin']);
  t.throws(() => writeFileSync(join(target, 'new.txt'), 'x'), { code: 'EROFS' });

  await unmount(target);
  await expectFreed(t, loop.device, file);
});

hostTest('closing the attach descriptor before mounting frees an autoclear device', async (t) => {
  const file = await image(t, TREE);
  const loop = await attachLoop(file);
  await loop.close();
  await loop.close(); // idempotent
  await expectFreed(t, loop.device, file);
});

hostTest('without autoclear the device stays bound until detachLoop', async (t) => {
  const file = await image(t, TREE);
  const loop = await attachLoop(file, { autoclear: false });
  await loop.close();
  t.false((await loopStatus(loop.device)).flags.autoclear);
  await detachLoop(loop.device);
  await expectFreed(t, loop.device, file);
});

hostTest('a writable attach and a direct-I/O attach report their flags', async (t) => {
  const dir = tempDir(t);
  const writable = join(dir, 'writable.erofs');
  copyFileSync(await image(t, TREE), writable);
  const rw = held(t, await attachLoop(writable, { readOnly: false }));
  t.deepEqual((await loopStatus(rw.device)).flags, { readOnly: false, autoclear: true, partscan: false, directIo: false });
  const direct = held(t, await attachLoop(writable, { directIo: true }));
  t.deepEqual((await loopStatus(direct.device)).flags, { readOnly: true, autoclear: true, partscan: false, directIo: true });
});

// Serial: without attachLoop's EBUSY retry, a concurrent test could take the free device first.
(skip ? test.skip : test.serial)('the LOOP_SET_FD fallback binds the device the same way', async (t) => {
  // The kernel here has LOOP_CONFIGURE, so attachLoop never takes this path; call it directly.
  const file = await image(t, TREE);
  const target = mountPoint(t);
  const native = loadNative();
  const device = `/dev/loop${await native.loopGetFree()}`;
  const fd = await native.loopSetFd(device, file, LoopFlags.LO_FLAGS_READ_ONLY | LoopFlags.LO_FLAGS_AUTOCLEAR);
  let open = true;
  const release = () => {
    if (open) closeSync(fd);
    open = false;
  };
  t.teardown(release);
  const status = await loopStatus(device);
  t.is(status.backingFile, file);
  t.deepEqual(status.flags, { readOnly: true, autoclear: true, partscan: false, directIo: false });
  await mount(device, target, 'erofs', ['MS_RDONLY']);
  release();
  t.is(readFileSync(join(target, 'hello.txt'), 'utf8'), TREE['hello.txt']);
  await unmount(target);
  await expectFreed(t, device, file);
});

hostTest('attaching a missing file is ENOENT naming the file', async (t) => {
  const missing = join(tempDir(t), 'no-such.erofs');
  const err = await t.throwsAsync(attachLoop(missing), { instanceOf: SystemCallError });
  t.is(err?.errno, 'ENOENT');
  t.is(err?.syscall, 'open');
  t.is(err?.path, missing);
  t.is(err?.message, `open ${missing}: ENOENT: No such file or directory`);
});

// detachLoop is not tried here: someone could bind the device in between, and it is theirs.
hostTest('status of an unbound device is ENXIO', async (t) => {
  // A free device stays free only until someone binds it; ask again if someone did.
  for (let attempt = 0; attempt < 5; attempt++) {
    const device = `/dev/loop${await loadNative().loopGetFree()}`;
    const err = await loopStatus(device).catch((e: unknown) => e);
    if (!(err instanceof SystemCallError)) continue;
    t.is(err.errno, 'ENXIO');
    t.is(err.syscall, 'LOOP_GET_STATUS64');
    t.is(err.path, device);
    t.is(err.message, `LOOP_GET_STATUS64 ${device}: ENXIO: no file is attached to this loop device`);
    return;
  }
  t.fail('every free loop device was taken before it could be asked');
});

hostTest('bad arguments are refused before any system call', async (t) => {
  await t.throwsAsync(attachLoop(''), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(attachLoop('/tmp/a\0b'), { instanceOf: InvalidArgumentError });
  await t.throwsAsync(loopStatus(42 as unknown as string), { instanceOf: InvalidArgumentError });
});
