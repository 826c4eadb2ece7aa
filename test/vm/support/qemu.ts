/**
 * Runs one program in a throwaway VM and returns what it did: for tests that
 * need kernel features the host kernel lacks (device-mapper, dm-verity).
 *
 * The guest boots the newest /boot kernel that has the needed modules, under
 * qemu's TCG (KVM guests hang on this machine), with our initramfs. Its root
 * is the host root over 9p, read-only, so every host path — node, dist/,
 * veritysetup, containerd — is the same inside. The job (argv, env) travels
 * as one file per string in a second, writable 9p share (the run directory);
 * the program's output, its exit status and whatever it writes to
 * $VM_RESULTS_DIR come back through the same share.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { FailedPreconditionError, InternalError, InvalidArgumentError } from '../../../snapshotter/core/errors.js';
import { CACHE_DIR } from './cache.js';
import { BUSYBOX, ensureInitramfs, isStaticElf } from './initramfs.js';
import { packageRoot } from './package-root.js';
import { findGuestKernel, type GuestKernel } from './kernel.js';
import { ensureBootImage } from './vmlinux.js';

export const QEMU = 'qemu-system-x86_64';
/**
 * qemu runs under coreutils' timeout, which kills it a little after our own
 * deadline even if this process dies without cleaning up (ava killed, ^C),
 * so no VM is ever left spinning on the shared cores. A SIGTERM sent to
 * timeout is passed on to qemu.
 */
const TIMEOUT = 'timeout';
const BACKSTOP_GRACE_S = 10;
/** Set to 1 to get the kernel's boot messages in the console log (slower: they go through an emulated UART). */
export const KERNEL_LOG_ENV = 'VM_KERNEL_LOG';
/** Where the run directory appears in the guest (see init.sh). */
export const GUEST_RUN_DIR = '/run/vm';
/** The guest path of the results dir, also given to the program as VM_RESULTS_DIR. */
export const GUEST_RESULTS_DIR = `${GUEST_RUN_DIR}/results`;
/** What init.sh prints when the root is ready and the job starts; ends the boot phase. */
const JOB_START_MARK = 'vm-init: running the job';

export interface VmRunOptions {
  /** The program and its arguments, as host paths (the guest sees the host root). */
  argv: string[];
  /** The program's whole environment besides PATH, HOME and VM_RESULTS_DIR (which it may override). */
  env?: Record<string, string>;
  /** The program's working directory, a guest path. Default "/". */
  cwd?: string;
  /**
   * Host directories to show, read-only, at their own path even where the
   * guest mounts its own file system (/tmp, /run, /var/tmp, containerd's
   * state). This checkout is always shown, so dist/ is found even when the
   * checkout lives under /tmp.
   */
  hostPaths?: string[];
  /** Kill the VM after this long (boot included). Default 120 s. */
  timeoutMs?: number;
  /** Default 2048. */
  memoryMiB?: number;
  /** Default 1: on this 2-core machine a second TCG vCPU costs more than it gains (docs/testing.md). */
  cpus?: number;
}

export interface VmRunResult {
  exitCode: number;
  /** The program's stdout and stderr, interleaved. */
  output: string;
  /** Kernel and init messages (the serial console). */
  console: string;
  /** Host path of the dir the program saw as $VM_RESULTS_DIR. */
  resultsDir: string;
  /** Host path of the whole run (job, output.log, console.log, results/); the caller removes it. */
  runDir: string;
  /** From starting qemu to the job starting in the guest. */
  bootMs: number;
  /** From starting qemu to qemu having exited. */
  totalMs: number;
}

/** The VM could not give a result: boot failure, timeout, qemu error. Carries the logs. */
export class VmRunError extends InternalError {
  override readonly code = 'ERR_VM_RUN';
  readonly console: string;
  readonly output: string;
  readonly runDir: string;

  constructor(message: string, logs: { console: string; output: string; runDir: string }) {
    const tail = logs.console.split('\n').slice(-40).join('\n');
    super(`${message}\n--- last console lines ---\n${tail}`, {
      hint: `the run's files are kept in ${logs.runDir}; see "Debugging a hang" in docs/testing.md`,
    });
    this.console = logs.console;
    this.output = logs.output;
    this.runDir = logs.runDir;
  }
}

/** Whether runInVm can work here, or what is missing. */
export function vmAvailable(): { ok: true } | { ok: false; reason: string } {
  const found = prerequisites();
  return 'reason' in found ? { ok: false, reason: found.reason } : { ok: true };
}

function prerequisites(): GuestKernel | { reason: string } {
  if (!findOnPath(QEMU)) return { reason: `${QEMU} not found (apt-get install qemu-system-x86)` };
  if (!findOnPath(TIMEOUT)) return { reason: `${TIMEOUT} not found (coreutils)` };
  if (!existsSync(BUSYBOX) || !isStaticElf(BUSYBOX)) {
    return { reason: `${BUSYBOX} is missing or not static (apt-get install busybox-static)` };
  }
  const kernel = findGuestKernel();
  if ('reason' in kernel) return kernel;
  try {
    accessSync(kernel.image, constants.R_OK);
  } catch {
    return { reason: `${kernel.image} is not readable (run as root)` };
  }
  return kernel;
}

export async function runInVm(options: VmRunOptions): Promise<VmRunResult> {
  checkJob(options);
  const kernel = prerequisites();
  if ('reason' in kernel) throw new FailedPreconditionError(`cannot run a VM: ${kernel.reason}`);
  const bootImage = ensureBootImage(kernel);
  const initramfs = ensureInitramfs(kernel);

  mkdirSync(CACHE_DIR, { recursive: true });
  const runDir = mkdtempSync(join(CACHE_DIR, 'run-'));
  writeJob(runDir, options);
  const resultsDir = join(runDir, 'results');
  mkdirSync(resultsDir);

  const args = qemuArgs({
    kernelImage: bootImage.path,
    initramfs,
    runDir,
    memoryMiB: options.memoryMiB ?? 2048,
    cpus: options.cpus ?? 1,
  });
  const timeoutMs = options.timeoutMs ?? 120_000;
  const vm = await runQemu(args, timeoutMs);
  const consoleLog = (bootImage.fallbackReason ? `[harness] booting the bzImage: ${bootImage.fallbackReason}\n` : '') + vm.console;
  writeFileSync(join(runDir, 'console.log'), consoleLog);

  const output = readIfExists(join(runDir, 'output.log'));
  const logs = { console: consoleLog, output, runDir };
  if (vm.timedOut) throw new VmRunError(`the VM did not finish within ${timeoutMs} ms and was killed`, logs);
  const status = readIfExists(join(runDir, 'exit-status')).trim();
  if (!/^\d+$/.test(status)) {
    throw new VmRunError(`the VM stopped without an exit status (qemu exited with ${vm.exit})`, logs);
  }
  return {
    exitCode: Number(status),
    output,
    console: consoleLog,
    resultsDir,
    runDir,
    bootMs: vm.bootMs ?? vm.totalMs,
    totalMs: vm.totalMs,
  };
}

function qemuArgs(o: { kernelImage: string; initramfs: string; runDir: string; memoryMiB: number; cpus: number }): string[] {
  const cmdline = [
    'console=ttyS0',
    'panic=-1', // a panic reboots, and -no-reboot turns that into qemu exiting
    ...(process.env[KERNEL_LOG_ENV] === '1' ? [] : ['quiet']),
    // No PS/2 devices or extra UARTs to probe for in this VM.
    'i8042.noaux',
    'i8042.nomux',
    'i8042.nopnp',
    'i8042.dumbkbd',
    '8250.nr_uarts=1',
    'mitigations=off', // page-table isolation and friends only slow an emulated, throwaway guest
    'random.trust_cpu=on', // -cpu max has RDRAND: no wait for entropy when node starts
  ].join(' ');
  return [
    '-accel', 'tcg', // never KVM: nested KVM guests hang on this machine
    '-machine', 'pc',
    '-cpu', 'max',
    '-m', String(o.memoryMiB),
    '-smp', String(o.cpus),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-serial', 'stdio',
    '-monitor', 'none',
    '-kernel', o.kernelImage,
    '-initrd', o.initramfs,
    '-append', cmdline,
    '-virtfs', 'local,path=/,mount_tag=host,security_model=passthrough,readonly=on,multidevs=remap',
    // qemu reads a comma in an option value as the next option unless doubled.
    '-virtfs', `local,path=${o.runDir.replaceAll(',', ',,')},mount_tag=vm,security_model=passthrough,multidevs=remap`,
  ];
}

function checkJob(options: VmRunOptions): void {
  for (const path of [options.cwd ?? '/', ...(options.hostPaths ?? [])]) {
    if (!isAbsolute(path) || path.includes('\0')) throw new InvalidArgumentError(`runInVm: not an absolute path: ${JSON.stringify(path)}`);
  }
  for (const path of options.hostPaths ?? []) {
    if (!existsSync(path)) throw new InvalidArgumentError(`runInVm: host path ${path} does not exist`);
  }
  const [program] = options.argv;
  if (program === undefined || program === '') throw new InvalidArgumentError('runInVm: argv is empty');
  // init.sh runs `env -i NAME=value... argv`: env would take such an argv[0] for an assignment.
  if (program.includes('=')) throw new InvalidArgumentError(`runInVm: argv[0] may not contain "=": ${program}`);
  if (options.argv.length > 9999) throw new InvalidArgumentError('runInVm: more than 9999 arguments');
  for (const [name, value] of Object.entries(options.env ?? {})) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new InvalidArgumentError(`runInVm: bad environment name ${JSON.stringify(name)}`);
    if (value.includes('\0')) throw new InvalidArgumentError(`runInVm: NUL in the value of ${name}`);
  }
  if (options.argv.some((arg) => arg.includes('\0'))) throw new InvalidArgumentError('runInVm: NUL in an argument');
}

/** One file per string, so init.sh never has to parse or unquote anything (see read_file there). */
function writeJob(runDir: string, options: VmRunOptions): void {
  const job = join(runDir, 'job');
  writeList(join(job, 'argv'), options.argv);
  writeList(join(job, 'keep'), [packageRoot(), ...(options.hostPaths ?? [])]);
  mkdirSync(join(job, 'env'));
  for (const [name, value] of Object.entries(options.env ?? {})) writeFileSync(join(job, 'env', name), value);
  writeFileSync(join(job, 'cwd'), options.cwd ?? '/');
}

/** Files named by zero-padded index, so the shell's sorted glob yields them in order. */
function writeList(dir: string, items: string[]): void {
  mkdirSync(dir, { recursive: true });
  items.forEach((item, i) => writeFileSync(join(dir, String(i).padStart(4, '0')), item));
}

interface QemuOutcome {
  console: string;
  exit: string;
  timedOut: boolean;
  bootMs: number | undefined;
  totalMs: number;
}

function runQemu(args: string[], timeoutMs: number): Promise<QemuOutcome> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const backstop = `${Math.ceil(timeoutMs / 1000) + BACKSTOP_GRACE_S}s`;
    const child = spawn(TIMEOUT, ['--signal=KILL', backstop, QEMU, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let seen = '';
    let bootMs: number | undefined;
    let timedOut = false;
    const kill = (): void => {
      child.kill('SIGTERM');
    };
    // A test process that dies must not leave a VM spinning on the shared CPUs.
    process.once('exit', kill);
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (bootMs === undefined) {
        seen = (seen + chunk.toString('latin1')).slice(-4096);
        if (seen.includes(JOB_START_MARK)) bootMs = performance.now() - started;
      }
    });
    child.stderr.on('data', (chunk: Buffer) => chunks.push(Buffer.from(`[qemu] ${chunk.toString()}`)));
    child.on('error', (err) => {
      clearTimeout(timer);
      process.removeListener('exit', kill);
      reject(new FailedPreconditionError(`cannot start ${QEMU}`, { cause: err }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', kill);
      resolve({
        // SeaBIOS clears the screen with terminal escapes; they only garble a log file.
        console: Buffer.concat(chunks).toString('utf8').replaceAll('\r\n', '\n').replace(/\x1b(\[[0-9;?]*[A-Za-z]|c)/g, ''),
        exit: signal ? `signal ${signal}` : `code ${code}`,
        timedOut,
        bootMs,
        totalMs: performance.now() - started,
      });
    });
  });
}

function findOnPath(program: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, program);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this dir
    }
  }
  return undefined;
}

function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : '';
}
