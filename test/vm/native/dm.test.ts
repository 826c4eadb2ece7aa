/** The addon's device-mapper calls on a real dm-verity device, in the VM (see guest/dm-verity-basic.ts). */
import type { DmVerityBasicReport } from '../guest/dm-verity-basic.js';
import { runGuestReport, vmTest } from '../support/vm-test.js';

vmTest('dm-verity through the addon: create, load, resume, mount, detect a flipped byte, refuse a wrong root, remove', async (t) => {
  const r = await runGuestReport<DmVerityBasicReport>(t, 'dm-verity-basic', 180_000);

  t.is(r.dmVersion[0], 4);
  t.regex(r.table, new RegExp(`^0 \\d+ verity 1 /dev/loop\\d+ /dev/loop\\d+ 4096 4096 \\d+ 0 sha256 ${r.rootHash} [0-9a-f]{64}$`));
  t.deepEqual(r.infoAfterLoad, { activeTable: false, inactiveTable: true, readOnly: false });
  t.deepEqual(r.infoAfterResume, { activeTable: true, inactiveTable: false, readOnly: true, suspended: false });
  t.true(r.suspendedAfterSuspend);
  t.false(r.suspendedAfterResume);
  t.regex(r.node, /^\/dev\/dm-\d+$/);
  // The kernel prints the table with the devices as major:minor.
  t.true(r.tableParams.startsWith(`1 ${r.loopNumbers.join(' ')} 4096 4096 `), r.tableParams);
  t.true(r.tableParams.includes(` sha256 ${r.rootHash} `), r.tableParams);
  t.true(r.listed);

  t.true(r.readBeforeMatches);
  t.is(r.statusBefore, 'V');
  t.true(r.openCountMounted >= 1);
  t.is(r.removeWhileMountedError, 'EBUSY');
  t.is(r.createTwiceError, 'EBUSY');
  t.is(r.writableVerityError, 'EINVAL');

  t.is(r.readAfterError, 'EIO');
  t.true(r.firstBlockAfterMatches, 'blocks other than the flipped one still read');
  t.is(r.statusAfter, 'C');

  t.false(r.removeDeferred);
  t.is(r.infoAfterRemoveError, 'ENXIO');
  t.regex(r.infoAfterRemoveMessage, /^DM_DEV_STATUS integrity-test-verity: ENXIO: no device-mapper device has this name$/);
  t.true(r.loopsFreed, 'autoclear loops go with the dm table');

  t.not(r.wrongRoot.mountError, 'none');
  t.is(r.wrongRoot.readError, 'EIO');
  t.is(r.wrongRoot.status, 'C');

  t.deepEqual(r.deferred, { removeDeferred: true, infoWhileOpen: true, goneAfterClose: true });

  t.is(r.bigAnswers.devicesListed, r.bigAnswers.devicesCreated);
  t.is(r.bigAnswers.targetsRead, r.bigAnswers.targetsLoaded);
  t.deepEqual(r.bigAnswers.lastTarget, { start: 399 * 8, length: 8, type: 'error', params: '' });
});
