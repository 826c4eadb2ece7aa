import test from 'ava';
import { FailedPreconditionError } from '../../../../snapshotter/core/errors.js';
import { ErofsMounter, kernelAtLeast } from '../../../../snapshotter/service/mounts/erofs-mounter.js';

test('kernel releases compare by major and minor', (t) => {
  t.true(kernelAtLeast('6.12.0', [6, 12]));
  t.true(kernelAtLeast('6.18.44-fc-v1272', [6, 12]));
  t.true(kernelAtLeast('7.0.1', [6, 12]));
  t.false(kernelAtLeast('6.11.9', [6, 12]));
  t.false(kernelAtLeast('6.1.0-57-amd64', [6, 12]));
  t.false(kernelAtLeast('garbage', [6, 12]));
});

test('auto picks file-backed mounts where the kernel has them, loop devices elsewhere', (t) => {
  t.is(new ErofsMounter('auto', '6.12.1').backing, 'file');
  t.is(new ErofsMounter('auto', '6.1.0-57-amd64').backing, 'loop');
  t.is(new ErofsMounter('loop', '6.18.0').backing, 'loop');
});

test('file backing on an older kernel is refused at start-up with the fix', (t) => {
  const err = t.throws(() => new ErofsMounter('file', '6.1.0-57-amd64'), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, /6\.12.*6\.1\.0-57-amd64/);
  t.regex(err!.hint!, /"loop" or "auto"/);
});
