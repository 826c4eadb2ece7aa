/**
 * Guest program for harness.test.ts: reports what the guest looks like from
 * inside (modules, devices, which paths are writable, what argv and env
 * arrived, what ./marker holds) to $VM_RESULTS_DIR/probe.json, writes a line to stdout and one to
 * stderr, and exits with the status named by PROBE_EXIT. Import only its types:
 * loading it runs it.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface ProbeReport {
  argv: string[];
  env: Record<string, string | undefined>;
  cwd: string;
  /** ./marker read relative to the working directory, or the errno code. */
  marker: string;
  kernelRelease: string;
  /** Names from /proc/modules. */
  modules: string[];
  /** /proc/misc lists device-mapper (its control device). */
  miscHasDeviceMapper: boolean;
  mapperControlExists: boolean;
  loopControlExists: boolean;
  cgroup2: boolean;
  /** "ok" or the errno code of writing a file there. */
  writes: Record<string, string>;
}

function readOrCode(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

function tryWrite(dir: string): string {
  const path = join(dir, `vm-probe-${process.pid}`);
  try {
    writeFileSync(path, 'x');
    rmSync(path);
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

const WRITABLE = ['/tmp', '/run', '/etc', '/var/lib/containerd', '/var/lib/containerd-integrity'];
/** The host's system dirs and this build tree: shared, never written. */
const READ_ONLY = ['/usr', dirname(fileURLToPath(import.meta.url))];

const resultsDir = process.env.VM_RESULTS_DIR;
if (!resultsDir) throw new Error('VM_RESULTS_DIR is not set: run this through runInVm');
const report: ProbeReport = {
  argv: process.argv.slice(2),
  env: { ...process.env },
  cwd: process.cwd(),
  marker: readOrCode('marker'),
  kernelRelease: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
  modules: readFileSync('/proc/modules', 'utf8').split('\n').filter(Boolean).map((line) => line.split(' ')[0]!),
  miscHasDeviceMapper: /\bdevice-mapper$/m.test(readFileSync('/proc/misc', 'utf8')),
  mapperControlExists: existsSync('/dev/mapper/control'),
  loopControlExists: existsSync('/dev/loop-control'),
  cgroup2: existsSync('/sys/fs/cgroup/cgroup.controllers'),
  writes: Object.fromEntries(
    [...WRITABLE, ...READ_ONLY, resultsDir].map(
      (dir) => [dir, tryWrite(dir)],
    ),
  ),
};
writeFileSync(join(resultsDir, 'probe.json'), JSON.stringify(report, null, 2));
process.stdout.write('probe: stdout line\n');
process.stderr.write('probe: stderr line\n');
process.exitCode = Number(process.env.PROBE_EXIT ?? '0');
