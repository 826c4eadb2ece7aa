/**
 * The packaging in systemd/, checked by the programs that read it on a node:
 * systemd-analyze verify for the unit (with broken copies proving that the
 * check can fail), systemd-tmpfiles for the directories, containerd for the
 * config drop-in, and the CLI for the command line the unit runs. Plus the
 * one rule no tool checks: nothing may give the daemon its own mount
 * namespace, or the layers it mounts would be invisible to containerd.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'smol-toml';
import { DEFAULT_ADDRESS, DEFAULT_ROOT } from '../../../snapshotter/core/config.js';
import { NODE_TRUST_DIR } from '../../../snapshotter/signature/trust.js';
import { CommandError, missingPrograms, runCommand } from '../../support/command.js';

/** The repository (or installed package) root: this file is <dist>/test/host/systemd/units.test.js. */
const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const UNIT_NAME = 'containerd-integrity-snapshotter.service';
const UNIT = readFileSync(join(ROOT, 'systemd', UNIT_NAME), 'utf8');
const TMPFILES = join(ROOT, 'systemd/tmpfiles.d/containerd-integrity.conf');
const CONTAINERD_DROP_IN = join(ROOT, 'systemd/containerd/containerd-integrity.toml');
const CLI = fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url));
const INSTALLED_CLI = '/usr/bin/integrityctl';

const skip = missingPrograms({ '/usr/bin/systemd-analyze': 'systemd', '/usr/bin/systemd-tmpfiles': 'systemd' });
const hostTest = skip ? test.skip : test;
if (skip) test('systemd units', (t) => t.pass(`skipped: ${skip}`));

/**
 * Settings that make systemd create a mount namespace for the unit, with the
 * values that do not (systemd.exec(5), and exec_needs_mount_namespace() in
 * systemd's execute.c). PrivateNetwork= and NetworkNamespacePath= count
 * unless PrivateMounts=no is set explicitly.
 */
const OFF = ['no', 'false', 'off', '0', ''];
const MOUNT_NAMESPACE: Record<string, string[]> = {
  PrivateMounts: OFF, PrivateTmp: OFF, PrivateDevices: OFF, PrivateIPC: OFF,
  ProtectSystem: OFF, ProtectHome: OFF, ProtectKernelTunables: OFF, ProtectKernelModules: OFF,
  ProtectKernelLogs: OFF, ProtectControlGroups: OFF, ProtectProc: ['default', ''], ProcSubset: ['all', ''],
  ReadWritePaths: [''], ReadOnlyPaths: [''], InaccessiblePaths: [''], ExecPaths: [''], NoExecPaths: [''],
  BindPaths: [''], BindReadOnlyPaths: [''], TemporaryFileSystem: [''], RootDirectory: [''], RootImage: [''],
  MountImages: [''], ExtensionImages: [''], ExtensionDirectories: [''], MountAPIVFS: OFF, DynamicUser: OFF,
  LogNamespace: [''], MountFlags: ['shared', ''],
};

interface Directive {
  section: string;
  key: string;
  value: string;
  line: number;
}

/** key=value lines of a unit file, with their section; comments dropped, continuation lines joined. */
function directives(unit: string): Directive[] {
  const result: Directive[] = [];
  let section = '';
  const lines = unit.split('\n');
  for (let i = 0; i < lines.length; i++) {
    let text = lines[i]!.trim();
    const line = i + 1;
    while (text.endsWith('\\') && i + 1 < lines.length) text = `${text.slice(0, -1)} ${lines[++i]!.trim()}`;
    if (text === '' || text.startsWith('#') || text.startsWith(';')) continue;
    if (text.startsWith('[')) {
      section = text.slice(1, -1);
      continue;
    }
    const eq = text.indexOf('=');
    if (eq > 0) result.push({ section, key: text.slice(0, eq).trim(), value: text.slice(eq + 1).trim(), line });
  }
  return result;
}

/** The settings of `unit` that would cut the daemon's mounts off from the host, as `line: key=value`. */
function mountNamespaceSettings(unit: string): string[] {
  const settings = directives(unit).filter((d) => d.section === 'Service');
  const privateMountsOff = settings.some((d) => d.key === 'PrivateMounts' && OFF.includes(d.value.toLowerCase()));
  return settings
    .filter((d) => {
      if (d.key === 'PrivateNetwork' || d.key === 'NetworkNamespacePath') return !privateMountsOff && !OFF.includes(d.value.toLowerCase());
      const off = MOUNT_NAMESPACE[d.key];
      return off !== undefined && !off.includes(d.value.toLowerCase());
    })
    .map((d) => `${d.line}: ${d.key}=${d.value}`);
}

/**
 * Problems systemd-analyze verify reports for `unit`: a failing status, and
 * every line about the unit, warnings included (it exits 0 on unknown keys and
 * unparsable values, which would otherwise go unnoticed). ExecStart's
 * /usr/bin/integrityctl, not installed here, is replaced by an executable stub
 * unless `keepExecStart`.
 */
async function verify(unit: string, options: { keepExecStart?: boolean } = {}): Promise<string[]> {
  const dir = await mkdtemp('/tmp/units-test-');
  try {
    let text = unit;
    if (!options.keepExecStart) {
      const stub = join(dir, 'integrityctl');
      await writeFile(stub, '#!/bin/sh\nexit 0\n');
      await chmod(stub, 0o755);
      text = unit.replaceAll(`ExecStart=${INSTALLED_CLI} `, `ExecStart=${stub} `);
    }
    const path = join(dir, UNIT_NAME);
    await writeFile(path, text);
    const args = ['verify', '--man=no', '--generators=no', '--recursive-errors=no', path];
    let output: string;
    let status = 0;
    try {
      const result = await runCommand('/usr/bin/systemd-analyze', args);
      output = result.stdout + result.stderr;
    } catch (err) {
      if (!(err instanceof CommandError)) throw err;
      output = err.stdout + err.stderr;
      status = err.exitCode ?? -1;
    }
    const about = output.split('\n').filter((line) => line.includes(path) || line.includes(UNIT_NAME));
    return status === 0 ? about : [`exit status ${status}`, ...about];
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `unit` with `from` replaced by `to`; fails if `from` is not there, so a broken copy is never the original. */
function broken(unit: string, from: string, to: string): string {
  if (!unit.includes(from)) throw new Error(`the unit has no ${JSON.stringify(from)} to break`);
  return unit.replace(from, to);
}

hostTest('systemd-analyze verify accepts the unit without a warning', async (t) => {
  t.deepEqual(await verify(UNIT), []);
});

hostTest('systemd-analyze verify rejects broken copies of the unit', async (t) => {
  const cases: [string, string][] = [
    ['a misspelt key', broken(UNIT, 'NoNewPrivileges=yes', 'NoNewPrivilege=yes')],
    ['a value systemd cannot parse', broken(UNIT, 'Restart=always', 'Restart=alwayz')],
    ['an unknown address family', broken(UNIT, 'RestrictAddressFamilies=AF_UNIX AF_INET', 'RestrictAddressFamilies=AF_UNIXX AF_INET')],
    ['a lost [Service] header', broken(UNIT, '[Service]\n', '')],
  ];
  for (const [what, unit] of cases) {
    t.not((await verify(unit)).length, 0, what);
  }
  if (!missingPrograms({ [INSTALLED_CLI]: 'containerd-integrity' })) return;
  t.regex((await verify(UNIT, { keepExecStart: true })).join('\n'), /integrityctl.*(not executable|No such file)/, 'ExecStart names a missing program');
});

hostTest('nothing in the unit gives the daemon a mount namespace of its own', (t) => {
  t.deepEqual(mountNamespaceSettings(UNIT), []);
  // The check itself, on copies that would hide the daemon's mounts from containerd.
  t.deepEqual(mountNamespaceSettings(broken(UNIT, 'PrivateMounts=no\n', 'PrivateMounts=no\nProtectSystem=strict\n')).map((s) => s.replace(/^\d+: /, '')), ['ProtectSystem=strict']);
  t.is(mountNamespaceSettings(broken(UNIT, 'PrivateMounts=no\n', 'PrivateNetwork=yes\n')).length, 1, 'PrivateNetwork= without PrivateMounts=no');
  // The drop-in docs/packaging.md suggests for nodes that do not fetch layers keeps the host's mounts.
  t.deepEqual(mountNamespaceSettings(broken(UNIT, 'PrivateMounts=no\n', 'PrivateMounts=no\nPrivateNetwork=yes\n')), []);
  t.is(mountNamespaceSettings(broken(UNIT, 'PrivateMounts=no\n', 'ReadWritePaths=/var/lib/containerd-integrity \\\n  /run/containerd-integrity\nPrivateMounts=no\n')).length, 1);
});

hostTest('the unit runs `integrityctl snapshotter serve`, a command the CLI has', async (t) => {
  const execStart = directives(UNIT).find((d) => d.section === 'Service' && d.key === 'ExecStart');
  const [program, ...args] = execStart!.value.split(/\s+/).filter((word) => !word.startsWith('$'));
  t.is(program, INSTALLED_CLI);
  const packageJson = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  t.truthy(packageJson.bin['integrityctl']);
  const { stdout } = await runCommand(process.execPath, [CLI, ...args, '--help']);
  t.regex(stdout, /^Usage: integrityctl snapshotter serve/);
});

hostTest('tmpfiles.d creates the directories the daemon and the trust store use', async (t) => {
  const root = await mkdtemp('/tmp/tmpfiles-test-');
  try {
    await runCommand('/usr/bin/systemd-tmpfiles', ['--create', `--root=${root}`, TMPFILES]);
    const mode = async (path: string) => {
      const s = await stat(join(root, path));
      return s.isDirectory() ? (s.mode & 0o7777).toString(8) : 'not a directory';
    };
    t.is(await mode(DEFAULT_ROOT), '711');
    t.is(await mode(dirname(DEFAULT_ADDRESS)), '711');
    t.is(await mode(NODE_TRUST_DIR), '755');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

(skip || missingPrograms({ '/usr/bin/containerd': 'containerd' }) ? test.skip : test)(
  'containerd imports the drop-in: the proxy plugin is registered and the main CRI settings stay',
  async (t) => {
    const dir = await mkdtemp('/tmp/dropin-test-');
    try {
      const main = join(dir, 'config.toml');
      await writeFile(main, [
        'version = 2',
        `imports = [${JSON.stringify(CONTAINERD_DROP_IN)}]`,
        '[plugins."io.containerd.grpc.v1.cri"]',
        '  sandbox_image = "example.test/pause:1"',
        '',
      ].join('\n'));
      const { stdout } = await runCommand('/usr/bin/containerd', ['--config', main, 'config', 'dump']);
      const dump = parse(stdout) as {
        proxy_plugins?: Record<string, { type?: string; address?: string }>;
        plugins?: Record<string, { sandbox_image?: string }>;
      };
      t.deepEqual(dump.proxy_plugins?.['integrity'], { type: 'snapshot', address: DEFAULT_ADDRESS });
      t.is(dump.plugins?.['io.containerd.grpc.v1.cri']?.sandbox_image, 'example.test/pause:1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  },
);
