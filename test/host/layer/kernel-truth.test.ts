/**
 * Kernel truth: every layer the pipeline converts must look, once the kernel
 * mounts the image, exactly like the tar says (test/support/tree-compare.ts
 * computes that view from the tar alone). Each image is mounted twice, from
 * the file itself (kernel >= 6.12) and through a read-only autoclear loop
 * device, and checked by Debian's fsck.erofs. The inputs: every golden tar
 * (testdata/erofs) and fast-check generated layers.
 */
import test from 'ava';
import fc from 'fast-check';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convertLayer, type ConvertResult } from '../../../snapshotter/layer/convert.js';
import { attachLoop, mount, unmount } from '../../../snapshotter/native/index.js';
import { missingPrograms, runCommand } from '../../support/command.js';
import { goldenVectors, makeGoldenTars } from '../../support/golden-tars.js';
import { tar, type TarMember } from '../../support/tar-writer.js';
import {
  LayerModel, RefusedLayer, compareWithMount, expectedTree, formatDifferences, layerEntries, type ExpectedTree,
} from '../../support/tree-compare.js';
import { veritysetupFormat } from '../../support/veritysetup.js';
import { nativeAddonMissing } from '../../support/native-addon.js';

const FSCK_EROFS = '/usr/bin/fsck.erofs';
const RUNS = Number(process.env.KERNEL_TRUTH_RUNS ?? 25);

function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (mount, loop devices)';
  if (!existsSync('/dev/loop-control')) return 'no /dev/loop-control (loop module not loaded)';
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\terofs\n')) return 'the kernel has no erofs (modprobe erofs)';
  const missing = missingPrograms({ [FSCK_EROFS]: 'erofs-utils', '/usr/sbin/veritysetup': 'cryptsetup-bin' });
  if (missing) return missing;
  return nativeAddonMissing();
}

const skip = skipReason();
const serial = skip ? test.serial.skip : test.serial;
let work = '';
let goldenTars = new Map<string, string>();

test.before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'kernel-truth-'));
  mkdirSync(join(work, 'golden'));
  goldenTars = new Map((await makeGoldenTars(join(work, 'golden'))).map((v) => [v.name, v.tarPath]));
});

test.after.always(async () => {
  if (!work) return;
  // A mount left by a crashed check would keep the temp dir busy: detach whatever is still mounted under it.
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  for (const target of mountinfo.split('\n').map((line) => line.split(' ')[4]).filter((p) => p?.startsWith(`${work}/`))) {
    await unmount(target!, ['MNT_DETACH']);
  }
  rmSync(work, { recursive: true, force: true });
});

type MountKind = 'file-backed' | 'loop';

/** Mounts `image` read-only, runs `body` on the mount point, always unmounts. */
async function withMount<T>(image: string, kind: MountKind, body: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(work, 'mnt-'));
  try {
    if (kind === 'file-backed') {
      await mount(image, dir, 'erofs', ['MS_RDONLY']);
    } else {
      const loop = await attachLoop(image, { readOnly: true, autoclear: true });
      try {
        await mount(loop.device, dir, 'erofs', ['MS_RDONLY']);
      } finally {
        // The mount holds the device now (or the attach failed): autoclear frees it with the unmount.
        await loop.close();
      }
    }
    try {
      return await body(dir);
    } finally {
      await unmount(dir);
    }
  } finally {
    rmdirSync(dir);
  }
}

async function* inChunks(bytes: Uint8Array, size = 65536): AsyncIterable<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

/**
 * Converts `layer`, runs fsck.erofs, mounts the image both ways and compares
 * with `expected`. Returns the problems found (empty = all good) and the result.
 */
async function convertAndCheck(layer: Uint8Array, expected: ExpectedTree): Promise<{ problems: string[]; result: ConvertResult }> {
  const dir = mkdtempSync(join(work, 'layer-'));
  try {
    const result = await convertLayer(inChunks(layer), {
      output: join(dir, 'layer.erofs'), hashFile: join(dir, 'layer.verity'), tempDir: dir,
    });
    const problems: string[] = [];
    const fsck = await runCommand(FSCK_EROFS, [result.erofs]).then(() => undefined, (err: Error) => err.message);
    if (fsck !== undefined) problems.push(`fsck.erofs: ${fsck}`);
    for (const kind of ['file-backed', 'loop'] as const) {
      const differences = await withMount(result.erofs, kind, (mnt) => compareWithMount(expected, mnt));
      if (differences.length > 0) problems.push(`${kind} mount: ${formatDifferences(differences)}`);
    }
    return { problems, result };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------ golden tars

for (const vector of goldenVectors()) {
  serial(`golden ${vector.name}: the kernel shows the layer (file-backed and loop mounts, fsck.erofs)`, async (t) => {
    const layer = readFileSync(goldenTars.get(vector.name)!);
    const { problems, result } = await convertAndCheck(layer, expectedTree(layer));
    t.deepEqual(problems, [], problems.join('\n'));
    // The image mounted is the golden one, byte for byte.
    t.is(result.sha256, vector.erofsSha256);
    t.is(result.rootHash, vector.verityRootHash);
  });
}

serial('the comparer reports every kind of difference', async (t) => {
  const layer = readFileSync(goldenTars.get('xattrs')!);
  const dir = mkdtempSync(join(work, 'layer-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { erofs } = await convertLayer(inChunks(layer), { output: join(dir, 'layer.erofs'), tempDir: dir });
  const wrong = expectedTree(layer);
  const node = (path: string) => wrong.nodes.get(path)!;
  node('xdir/user-foo').mode = 0o600;
  node('xdir/user-foo').uid = 7;
  node('xdir/user-foo').xattrs[0]!.value = Buffer.from('baz');
  node('xdir/selinux').sha256 = '0'.repeat(64);
  node('xdir/sym-with-xattr').target = 'elsewhere';
  node('xdir/sub').nlink = 3;
  node('xdir/cap-bin').xattrs = [];
  wrong.nodes.delete('xdir/no-xattrs');
  wrong.nodes.set('xdir/ghost', { ...node('xdir/big-value'), path: 'xdir/ghost', inode: -1 });
  const differences = await withMount(erofs, 'file-backed', (mnt) => compareWithMount(wrong, mnt));
  t.log(formatDifferences(differences));
  const expectations = [
    /^xdir\/user-foo: mode: expected 00600, kernel shows 00644$/m,
    /^xdir\/user-foo: uid: expected 7, kernel shows 0$/m,
    /^xdir\/user-foo: xattr user\.foo: expected "baz", kernel returns "bar"$/m,
    /^xdir\/selinux: content sha256: expected 0{64}, kernel shows [0-9a-f]{64}$/m,
    /^xdir\/sym-with-xattr: symlink target: expected "elsewhere", kernel shows "user-foo"$/m,
    /^xdir\/sub: nlink: expected 3, kernel shows 2$/m,
    /^xdir\/cap-bin: xattr names: expected \[\], kernel lists \[security\.capability\]$/m,
    /^xdir\/no-xattrs: unexpected entry \(file\)$/m,
    /^xdir\/ghost: missing \(expected file\)$/m,
  ];
  for (const pattern of expectations) t.regex(differences.join('\n'), pattern);
  t.is(differences.length, expectations.length);
});

serial('veritysetup format gives our root hash and hash tree', async (t) => {
  const dir = mkdtempSync(join(work, 'verity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const name of ['synthetic-rootfs', 'xattrs', 'file-4097']) {
    const layer = readFileSync(goldenTars.get(name)!);
    const ours = await convertLayer(inChunks(layer), { output: join(dir, `${name}.erofs`), hashFile: join(dir, `${name}.verity`), tempDir: dir });
    const theirs = await veritysetupFormat(ours.erofs, join(dir, `${name}.veritysetup`));
    t.is(theirs.status, 0, theirs.output);
    t.is(theirs.rootHash, ours.rootHash, name);
    t.true(readFileSync(ours.hashFile!).equals(readFileSync(join(dir, `${name}.veritysetup`))), `${name}: hash trees differ`);
  }
});

// ------------------------------------------------------------ corner cases

const d = (path: string, extra: Partial<TarMember> = {}): TarMember => ({ path, type: 'directory', ...extra });
const f = (path: string, data = '', extra: Partial<TarMember> = {}): TarMember => ({ path, data, ...extra });
const cornerCases: Record<string, TarMember[]> = {
  'the root re-listed after its link count wrapped': [d('a'), d('b'), d('c'), f('a'), f('b'), f('c'), d('.', { mode: 0o711, uid: 5 })],
  'dir -> file and file -> dir, last entry wins': [d('x'), f('x/inner', 'gone'), f('x', 'now a file'), f('y', 'file'), d('y', { mode: 0o750 }), f('y/z', 'in the new dir')],
  'a hard link replaced by a file and a linked file replaced': [f('a', 'one'), { path: 'b', type: 'hardlink', linkTarget: 'a' }, { path: 'c', type: 'hardlink', linkTarget: 'a' }, f('b', 'two'), f('a', 'three')],
  'a hard link named like a whiteout is a hard link': [f('a', 'abc'), { path: '.wh.b', type: 'hardlink', linkTarget: 'a' }],
  'a whiteout with data keeps its size, a whiteout replaces a file': [f('.wh.x', 'ten bytes!'), f('y', 'data'), f('.wh.y'), f('dir/.wh.z', '', { uid: 70000, gid: 3 })],
  'two opaque markers and a whiteout in one directory': [d('o'), f('o/.wh..wh..opq'), f('o/.wh..wh..opq'), f('o/.wh.x'), d('o', { xattrs: [['user.after', 'relisted']] })],
  'an opaque marker creates its directory': [f('new/deeper/.wh..wh..opq')],
  'user.* values of symlinks, devices and fifos are hidden by the VFS, trusted.* are not': [
    { path: 's', type: 'symlink', linkTarget: 't', xattrs: [['user.u', 'x'], ['trusted.t', 'y']] },
    { path: 'c', type: 'char', devMajor: 1, devMinor: 3, xattrs: [['user.u', 'x'], ['security.s', 'y']] },
    { path: 'p', type: 'fifo', xattrs: [['user.u', 'x']] },
  ],
  'device minors with bit 19 set come back as mkfs 1.8.10 encodes them': [
    { path: 'lo', type: 'char', devMajor: 7, devMinor: 0x7ffff }, { path: 'hi', type: 'char', devMajor: 7, devMinor: 0x80000 },
    { path: 'max', type: 'block', devMajor: 4095, devMinor: 0xfffff },
  ],
  'owners beyond 16 bits and symlinks with modes other than 0777': [
    f('big', 'x', { uid: 4_000_000_000, gid: 65536 }), { path: 'l', type: 'symlink', linkTarget: 'big', mode: 0o640, uid: 70000 },
  ],
  'names and xattr values that are not UTF-8': [
    d(Buffer.from([0x64, 0xfe]).toString('latin1'), { path: Uint8Array.of(0x64, 0xfe), xattrs: [['trusted.t', Uint8Array.of(0xff, 0)]] }),
    f('', '\u00ff', { path: Uint8Array.of(0x64, 0xfe, 0x2f, 0x66, 0xe9), xattrs: [['user.x', 'v']] }),
    { path: Uint8Array.of(0x6c, 0x80), type: 'symlink', linkTarget: Uint8Array.of(0x64, 0xfe, 0x2f, 0x66, 0xe9) },
  ],
  'implicit directories take the parent\'s write bits and owner': [d('.', { mode: 0o775, uid: 9, gid: 8 }), f('a/b/c'), d('r', { mode: 0o700, uid: 1 }), f('r/s/t')],
};

for (const [name, members] of Object.entries(cornerCases)) {
  serial(`corner case: ${name}`, async (t) => {
    const layer = tar(members);
    const { problems } = await convertAndCheck(layer, expectedTree(layer));
    t.deepEqual(problems, [], problems.join('\n'));
  });
}

// ------------------------------------------------------------ generated layers

const dirName = fc.constantFrom('a', 'b', 'etc', 'usr', 'ü-dir', 'x y');
const plainName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('a', 'b', 'c', 'f', 'etc', '.hidden', 'ü', '日本語', 'x y', 'a.b') },
  { weight: 1, arbitrary: fc.integer({ min: 90, max: 255 }).map((n) => 'L'.repeat(n)) },
);
const leafName = fc.oneof(
  { weight: 8, arbitrary: plainName },
  { weight: 2, arbitrary: plainName.filter((n) => n.length <= 251).map((n) => `.wh.${n}`) },
);
/** An opaque marker needs a directory to mark (the layer root has none to hide). */
const opaqueMarker = fc.array(dirName, { minLength: 1, maxLength: 3 }).map((dirs) => [...dirs, '.wh..wh..opq'].join('/'));
const pathOf = (leaf: fc.Arbitrary<string>) => fc.tuple(fc.array(dirName, { maxLength: 3 }), leaf).map(([dirs, name]) => [...dirs, name].join('/'));
const size = fc.oneof(fc.constantFrom(0, 1, 511, 4095, 4096, 4097, 8192, 12289), fc.integer({ min: 0, max: 70_000 }));
const id = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0, 1, 1000) }, { weight: 1, arbitrary: fc.constantFrom(65535, 65536, 100_000, 4_000_000_000) });
const mode = fc.constantFrom(0o755, 0o644, 0o700, 0o600, 0o777, 0o1777, 0o4755, 0o2755, 0o7777, 0o000);
const xattrs = fc.uniqueArray(
  fc.tuple(fc.constantFrom('user.', 'trusted.', 'security.'), fc.constantFrom('a', 'mime', 'selinux', 'k'.repeat(200)), fc.integer({ min: 0, max: 300 })),
  { maxLength: 3, selector: ([prefix, suffix]) => prefix + suffix },
);
/**
 * The kernel parses security.capability (commoncap) and answers EINVAL for a
 * value that is not a vfs_cap_data, so only real ones: revision 2, the
 * effective flag, permitted and inheritable sets (as setcap writes them).
 */
const capability = fc.tuple(fc.boolean(), fc.nat(), fc.nat(), fc.nat(0x3ff)).map(([effective, permitted, inheritable, high]) => {
  const value = Buffer.alloc(20);
  value.writeUInt32LE(0x02000000 | (effective ? 1 : 0), 0);
  value.writeUInt32LE(permitted >>> 0, 4);
  value.writeUInt32LE(inheritable >>> 0, 8);
  value.writeUInt32LE(high, 12);
  return value;
});
const owner = { mode, uid: id, gid: id, xattrs, capability: fc.option(capability, { freq: 4 }), gnu: fc.boolean() };

const op = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('file' as const), path: pathOf(leafName), size, ...owner }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('file' as const), path: opaqueMarker, size: fc.constant(0), ...owner }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('directory' as const), path: pathOf(plainName), ...owner }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('symlink' as const), path: pathOf(plainName), target: fc.constantFrom('a', '../etc/x', '/abs/path', 'T'.repeat(300), 'ü/日本'), ...owner }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('hardlink' as const), path: pathOf(plainName), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constantFrom('char' as const, 'block' as const), path: pathOf(plainName), ...owner,
      major: fc.integer({ min: 0, max: 4095 }), minor: fc.oneof(fc.constantFrom(0, 255, 256, 0xfffff), fc.integer({ min: 0, max: 0xfffff })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fifo' as const), path: pathOf(plainName), ...owner }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('root' as const), ...owner }) },
);
type Op = typeof op extends fc.Arbitrary<infer T> ? T : never;

function pattern(length: number, seed: number): Uint8Array {
  return new Uint8Array(length).map((_, i) => (i * 31 + seed * 7 + (i >> 12)) & 0xff);
}

function memberOf(o: Op, linkable: readonly string[], n: number): TarMember | undefined {
  if (o.kind === 'hardlink') return linkable.length ? { path: o.path, type: 'hardlink', linkTarget: linkable[o.pick % linkable.length]! } : undefined;
  const common: TarMember = {
    path: o.kind === 'root' ? './' : o.path, mode: o.mode, uid: o.uid, gid: o.gid, longNames: o.gnu ? 'gnu' : 'pax',
    xattrs: [
      ...o.xattrs.map(([prefix, suffix, length], i): [string, Uint8Array] => [prefix + suffix, pattern(length, n + i)]),
      ...(o.capability ? [['security.capability', o.capability] as [string, Uint8Array]] : []),
    ],
  };
  switch (o.kind) {
    case 'file': return { ...common, data: pattern(o.size, n) };
    case 'directory':
    case 'root': return { ...common, type: 'directory' };
    case 'symlink': return { ...common, type: 'symlink', linkTarget: o.target };
    case 'char':
    case 'block': return { ...common, type: o.kind, devMajor: o.major, devMinor: o.minor };
    case 'fifo': return { ...common, type: 'fifo' };
  }
}

/** The members the pipeline must accept: each candidate is kept only if the model takes the layer with it. */
function acceptedLayer(ops: readonly Op[]): TarMember[] {
  const accepted: TarMember[] = [];
  const linkable: string[] = [];
  ops.forEach((o, n) => {
    const member = memberOf(o, linkable, n);
    if (!member) return;
    try {
      const model = new LayerModel();
      for (const entry of layerEntries(tar([...accepted, member]))) model.add(entry);
    } catch (err) {
      if (err instanceof RefusedLayer) return;
      throw err;
    }
    accepted.push(member);
    if (member.type !== 'directory' && !String(member.path).endsWith('.wh..wh..opq')) linkable.push(String(member.path));
  });
  return accepted;
}

serial(`generated layers: the kernel shows the layer (${RUNS} runs)`, async (t) => {
  t.timeout(240_000);
  const seen = { paths: 0, whiteouts: 0, opaque: 0, hardlinked: 0, devices: 0, xattrs: 0, bigIds: 0 };
  const details = await fc.check(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
      const layer = tar(acceptedLayer(ops));
      const expected = expectedTree(layer);
      for (const node of expected.nodes.values()) {
        seen.paths++;
        if (node.whiteout) seen.whiteouts++;
        else if (node.type === 'char' || node.type === 'block') seen.devices++;
        if (node.xattrs.some((x) => x.name === 'trusted.overlay.opaque')) seen.opaque++;
        if (node.type !== 'directory' && node.nlink > 1) seen.hardlinked++;
        if (node.xattrs.length > 0) seen.xattrs++;
        if (node.uid > 0xffff || node.gid > 0xffff) seen.bigIds++;
      }
      const { problems } = await convertAndCheck(layer, expected);
      if (problems.length > 0) throw new Error(problems.join('\n'));
    }),
    { numRuns: RUNS },
  );
  // fc.assert's error leaves out what the property threw; say it, with the seed to replay it.
  if (details.failed) {
    t.fail(`seed ${details.seed}, path ${details.counterexamplePath}, counterexample ${JSON.stringify(details.counterexample)}:\n` +
      `${(details.errorInstance as Error | undefined)?.message ?? 'no error'}`);
    return;
  }
  t.log(`${RUNS} layers; paths compared: ${Object.entries(seen).map(([what, n]) => `${what} ${n}`).join(', ')}`);
  t.pass();
});
