/**
 * On a kernel without device-mapper every dm call fails the same clear way.
 * The dm calls themselves run against a real dm-verity device in the VM
 * (test/vm/guest/dm-verity-basic.ts); this host has no device-mapper.
 */
import test from 'ava';
import { existsSync } from 'node:fs';
import { SystemCallError } from '../../../snapshotter/core/errors.js';
import * as dm from '../../../snapshotter/native/dm.js';
import { hostSkipReason } from './fixture.js';

const CONTROL = '/dev/mapper/control';
const skip = hostSkipReason() ?? (existsSync(CONTROL) ? `this kernel has device-mapper (${CONTROL}); the VM tests cover it` : undefined);
const hostTest = skip ? test.skip : test;
if (skip) test('native dm tests without device-mapper', (t) => t.pass(`skipped: ${skip}`));

const calls: [string, () => Promise<unknown>][] = [
  ['dmVersion', () => dm.dmVersion()],
  ['dmList', () => dm.dmList()],
  ['dmCreate', () => dm.dmCreate('integrity-test', { uuid: 'INTEGRITY-test' })],
  ['dmLoadTable', () => dm.dmLoadTable('integrity-test', [{ start: 0, length: 8, type: 'error', params: '' }], { readOnly: true })],
  ['dmResume', () => dm.dmResume('integrity-test')],
  ['dmSuspend', () => dm.dmSuspend('integrity-test')],
  ['dmRemove', () => dm.dmRemove('integrity-test', { deferred: true })],
  ['dmStatus', () => dm.dmStatus('integrity-test')],
  ['dmTable', () => dm.dmTable('integrity-test')],
  ['dmInfo', () => dm.dmInfo('integrity-test')],
];

for (const [name, call] of calls) {
  hostTest(`${name} says device-mapper is not available`, async (t) => {
    const err = await t.throwsAsync(call(), { instanceOf: SystemCallError });
    t.is(err?.errno, 'ENOENT');
    t.is(err?.syscall, 'open');
    t.is(err?.path, CONTROL);
    t.is(err?.message, `open ${CONTROL}: ENOENT: device-mapper is not available in this kernel: ${CONTROL} does not exist`);
    t.regex(err?.hint ?? '', /modprobe dm_verity/);
  });
}
