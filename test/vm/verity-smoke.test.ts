import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VeritySmokeReport } from './guest/verity-smoke.js';
import { guestProgram, runInVmForTest, vmTest } from './support/vm-test.js';

vmTest('dm-verity over EROFS with the distro tools: reads verify, one flipped byte gives EIO and status corrupted', async (t) => {
  const result = await runInVmForTest(t, { argv: [process.execPath, guestProgram('verity-smoke')] });
  t.is(result.exitCode, 0, result.output);
  const report = JSON.parse(readFileSync(join(result.resultsDir, 'verity-smoke.json'), 'utf8')) as VeritySmokeReport;
  t.regex(report.rootHash, /^[0-9a-f]{64}$/);
  t.is(report.statusBefore, 'verified');
  t.true(report.readBeforeMatches);
  t.is(report.readAfterError, 'EIO');
  t.is(report.statusAfter, 'corrupted');
  // Only the tampered block fails; the file's first block is elsewhere in the image.
  t.true(report.firstBlockAfterMatches);
});
