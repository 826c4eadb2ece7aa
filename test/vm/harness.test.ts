import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ProbeReport } from './guest/harness-probe.js';
import { findGuestKernel } from './support/kernel.js';
import { GUEST_RESULTS_DIR, runInVm, VmRunError } from './support/qemu.js';
import { guestProgram, runInVmForTest, vmTest } from './support/vm-test.js';

// The guest sees the host root, so the host's node is the guest's node.
const NODE = process.execPath;

vmTest('a trivial program boots, runs and powers off in under 15 s', async (t) => {
  const result = await runInVmForTest(t, { argv: [NODE, '-e', 'process.stdout.write("trivial")'] });
  t.is(result.exitCode, 0);
  t.is(result.output, 'trivial');
  t.true(result.bootMs < result.totalMs);
  t.true(result.totalMs < 15_000, `one boot took ${Math.round(result.totalMs)} ms`);
  t.regex(result.console, /vm-init: job exited with status 0/);
});

// Strings a shell would split, expand or trim if init.sh ever interpreted them.
const TRICKY_ARGS = ['plain', 'two words', '', `it's "quoted"`, '$(touch /tmp/pwned) `id` $HOME', '*', '-n', 'a\nb\n\n'];
const TRICKY_ENV = { PROBE_EXIT: '3', TRICKY: ' lead; $(id)\n\n', EMPTY: '' };

vmTest('the guest has device-mapper, dm-verity, erofs, loop and overlay; argv, env, cwd and exit status pass through', async (t) => {
  // Under /tmp, which the guest covers with its own tmpfs: only hostPaths brings it back.
  const hostDir = mkdtempSync(join(tmpdir(), 'vm-probe-'));
  t.teardown(() => rmSync(hostDir, { recursive: true, force: true }));
  writeFileSync(join(hostDir, 'marker'), 'from the host');
  const result = await runInVmForTest(t, {
    argv: [NODE, guestProgram('harness-probe'), ...TRICKY_ARGS],
    env: TRICKY_ENV,
    cwd: hostDir,
    hostPaths: [hostDir],
  });
  t.is(result.exitCode, 3, result.output);
  t.regex(result.output, /^probe: stdout line$/m);
  t.regex(result.output, /^probe: stderr line$/m);
  const probe = JSON.parse(readFileSync(join(result.resultsDir, 'probe.json'), 'utf8')) as ProbeReport;

  t.deepEqual(probe.argv, TRICKY_ARGS);
  t.is(probe.cwd, hostDir);
  t.is(probe.marker, 'from the host');
  t.deepEqual(Object.keys(probe.env).sort(), ['EMPTY', 'HOME', 'PATH', 'PROBE_EXIT', 'TRICKY', 'VM_RESULTS_DIR']);
  t.is(probe.env.TRICKY, TRICKY_ENV.TRICKY);
  t.is(probe.env.EMPTY, '');
  t.is(probe.env.VM_RESULTS_DIR, GUEST_RESULTS_DIR);

  const kernel = findGuestKernel();
  t.is(probe.kernelRelease, 'version' in kernel ? kernel.version : '');
  for (const module of ['dm_mod', 'dm_verity', 'erofs', 'loop', 'overlay']) t.true(probe.modules.includes(module), module);
  t.true(probe.miscHasDeviceMapper);
  t.true(probe.mapperControlExists);
  t.true(probe.loopControlExists);
  t.true(probe.cgroup2);

  const buildDir = dirname(guestProgram('harness-probe'));
  t.deepEqual(probe.writes, {
    '/tmp': 'ok',
    '/run': 'ok',
    '/etc': 'ok',
    '/var/lib/containerd': 'ok',
    '/var/lib/containerd-integrity': 'ok',
    '/usr': 'EROFS',
    [buildDir]: 'EROFS',
    [GUEST_RESULTS_DIR]: 'ok',
  });
});

vmTest('a program that outlives its timeout gets the VM killed and the console reported', async (t) => {
  const started = performance.now();
  const error = await t.throwsAsync(runInVm({ argv: ['/bin/sleep', '600'], timeoutMs: 12_000 }), { instanceOf: VmRunError });
  if (!error) return;
  t.teardown(() => rmSync(error.runDir, { recursive: true, force: true }));
  t.regex(error.message, /did not finish within 12000 ms/);
  t.regex(error.console, /vm-init: running the job/);
  t.true(performance.now() - started < 20_000);
});

test('bad jobs are refused before any VM starts', async (t) => {
  await t.throwsAsync(runInVm({ argv: [] }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.throwsAsync(runInVm({ argv: ['A=B'] }), { code: 'ERR_INVALID_ARGUMENT', message: /argv\[0\]/ });
  await t.throwsAsync(runInVm({ argv: [NODE], env: { 'BAD-NAME': 'x' } }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.throwsAsync(runInVm({ argv: [NODE, 'a\0b'] }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.throwsAsync(runInVm({ argv: [NODE], cwd: 'relative' }), { code: 'ERR_INVALID_ARGUMENT' });
  await t.throwsAsync(runInVm({ argv: [NODE], hostPaths: ['/nonexistent/vm-host-path'] }), { code: 'ERR_INVALID_ARGUMENT' });
});
