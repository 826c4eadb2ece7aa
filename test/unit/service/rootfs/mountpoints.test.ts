/**
 * The mountpoints layer of an image: the resolved mount targets it lacks,
 * never a path component that is a symlink in the image, never anything the
 * image already has; parents the image has carry the image's attributes.
 */
import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_MOUNTPOINT_DIRS, DEFAULT_MOUNTPOINT_FILES } from '../../../../snapshotter/core/config.js';
import { buildMountpointsLayer, planMountpoints } from '../../../../snapshotter/service/rootfs/mountpoints.js';
import { literalTree, type LiteralLayer } from '../../../support/literal-layers.js';

const DEFAULTS = { dirs: DEFAULT_MOUNTPOINT_DIRS, files: DEFAULT_MOUNTPOINT_FILES };

/** A Debian-like image: /var/run -> /run, /etc/resolv.conf -> ../run/resolv.conf, /tmp 1777. */
const DEBIAN: LiteralLayer[] = [
  { 'etc/resolv.conf': { link: '../run/resolv.conf' } },
  { 'var/run': { link: '/run' }, run: { dir: true, mode: 0o755 }, tmp: { dir: true, mode: 0o1777 }, 'etc/passwd': { file: true }, proc: { dir: true } },
];

test('the resolved targets the image lacks, never its symlinks, never what it has', async (t) => {
  const plan = await planMountpoints(DEFAULTS, literalTree(DEBIAN));
  t.deepEqual(plan.entries.map((e) => `${e.path} ${e.type} ${e.mode.toString(8)}`), [
    '. directory 755',
    'dev directory 755',
    'dev/mqueue directory 755',
    'dev/pts directory 755',
    'dev/shm directory 755',
    'dev/termination-log file 644',
    'etc directory 755',
    'etc/hostname file 644',
    'etc/hosts file 644',
    'run directory 755',
    'run/resolv.conf file 644',
    'run/secrets directory 755',
    'run/secrets/kubernetes.io directory 755',
    'run/secrets/kubernetes.io/serviceaccount directory 755',
    'sys directory 755',
  ]);
  t.false(plan.entries.some((e) => e.path.startsWith('var')), 'nothing hides /var/run');
  t.deepEqual(plan.notes.map((n) => `${n.path} -> ${n.resolved}: ${n.note}`), [
    '/proc -> /proc: the image has it',
    '/tmp -> /tmp: the image has it',
    '/run -> /run: the image has it',
  ]);
});

test("a directory the layer repeats as a parent keeps the image's mode, owner, time and xattrs", async (t) => {
  const image: LiteralLayer[] = [{ run: { dir: true, mode: 0o1777, uid: 33, xattrs: { 'user.label': 'x' }, opaque: true } }];
  const plan = await planMountpoints({ dirs: ['/run/secrets'], files: [] }, literalTree(image));
  const run = plan.entries.find((e) => e.path === 'run');
  t.like(run, { type: 'directory', mode: 0o1777, uid: 33, mtime: 1_700_000_000 });
  t.deepEqual(run?.xattrs.map((x) => x.name), ['user.label'], "overlay's opaque mark is not repeated: it would hide the image's /run");
});

test('a target whose way goes through a file of the image is left out, saying so', async (t) => {
  const plan = await planMountpoints({ dirs: ['/etc/passwd/x'], files: [] }, literalTree(DEBIAN));
  t.deepEqual(plan.entries.map((e) => e.path), ['.']);
  t.deepEqual(plan.notes, [{ path: '/etc/passwd/x', resolved: '/etc/passwd/x', note: '/etc/passwd is a file in the image' }]);
});

test('an image with every target needs a layer with its root only; the root repeats the image root', async (t) => {
  const everything: LiteralLayer = Object.fromEntries([
    ...DEFAULTS.dirs.map((d) => [d.slice(1), { dir: true as const }]),
    ...DEFAULTS.files.map((f) => [f.slice(1), { file: true as const }]),
  ]);
  const plan = await planMountpoints(DEFAULTS, literalTree([everything]));
  t.deepEqual(plan.entries.map((e) => e.path), ['.']);
  t.is(plan.notes.length, DEFAULTS.dirs.length + DEFAULTS.files.length);
});

test('the same plan builds the same bytes; another one builds others', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mountpoints-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((n) => mkdtemp(join(dir, n))));
  const debian = await planMountpoints(DEFAULTS, literalTree(DEBIAN));
  const empty = await planMountpoints(DEFAULTS, literalTree([{}]));
  const built = await Promise.all([buildMountpointsLayer(debian.entries, a!), buildMountpointsLayer(debian.entries, b!), buildMountpointsLayer(empty.entries, c!)]);
  t.is(built[0].sha256, built[1].sha256);
  t.is(built[0].rootHash, built[1].rootHash);
  t.not(built[0].sha256, built[2].sha256);
  t.is(built[0].inodes, debian.entries.length);
});
