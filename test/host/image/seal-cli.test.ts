/**
 * integrityctl image seal / image verify / signature verify end to end, as a
 * builder and an operator run them: a layout built here is sealed, copied by
 * skopeo, verified, tampered with, imported by containerd; the flattened root
 * hash is compared with Delivery Kit's own pipeline (mkfs.erofs 1.8.10 and
 * veritysetup, run with delivery-kit-sdk's arguments).
 */
import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { finished } from 'node:stream/promises';
import { CERT_ANNOTATION, CHAIN_ANNOTATION, DM_VERITY_ROOT_HASH_ANNOTATION, SIGNATURE_ANNOTATION } from '../../../snapshotter/oci/annotations.js';
import { flattenLayers } from '../../../snapshotter/oci/flatten.js';
import { openLayoutImage } from '../../../snapshotter/oci/image-source.js';
import { OciLayout } from '../../../snapshotter/oci/layout.js';
import { signedMessage } from '../../../snapshotter/signature/payload.js';
import { buildImage, tarLayout, type FileSpec } from '../../support/oci-image.js';
import { createPki, writePkiFiles, type PkiFiles } from '../../support/pki.js';
import { veritysetupMissing, VERITYSETUP } from '../../support/veritysetup.js';

const run = promisify(execFile);
const CLI = new URL('../../../snapshotter/cli/main.js', import.meta.url).pathname;
/** erofs-utils 1.8.10, the version Delivery Kit pins; a reference build, used only to compare outputs. */
const MKFS_1_8_10 = process.env.MKFS_EROFS_1_8_10 ?? '/tmp/erofs-utils-1.8.10/mkfs/mkfs.erofs';
const DK_SALT = 'dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b';

function missing(tool: string): string | undefined {
  try {
    accessSync(tool, constants.X_OK);
    return undefined;
  } catch {
    return `${tool} is not installed`;
  }
}

interface Run { code: number; stdout: string; stderr: string }

async function integrityctl(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const LAYERS: FileSpec[][] = [
  [{ path: 'bin/' }, { path: 'bin/hello', data: 'hello world\n', mode: 0o755 }, { path: 'etc/' }, { path: 'etc/motd', data: 'base\n' }, { path: 'etc/old', data: 'old\n' }],
  [{ path: 'etc/' }, { path: 'etc/motd', data: 'sealed\n' }, { path: 'etc/.wh.old', data: '' }, { path: 'var/' }, { path: 'var/.wh..wh..opq', data: '' }],
];

let work: string;
let pki: PkiFiles;

test.before(async () => {
  work = mkdtempSync(join(tmpdir(), 'seal-cli-'));
  pki = writePkiFiles(await createPki(), join(work, 'pki'));
  await buildImage(join(work, 'in'), LAYERS, { tag: 'v1' });
});
test.after.always(() => rmSync(work, { recursive: true, force: true }));

test.serial('seal → skopeo copy → verify passes → a tampered layer blob fails verify, named', async (t) => {
  const skip = missing('/usr/bin/skopeo');
  if (skip) return t.pass(`skipped: ${skip}`);
  const sealed = await integrityctl('image', 'seal', join(work, 'in:v1'), '--key', pki.key, '--cert', pki.cert, '--chain', pki.chain,
    '-o', join(work, 'sealed'), '--trust', pki.trust, '--json');
  t.is(sealed.code, 0, sealed.stderr);
  const result = JSON.parse(sealed.stdout) as { output: string; manifestDigest: string; layerRootHashes: string[] };
  t.is(result.output, `oci:${join(work, 'sealed')}:v1`);

  await run('skopeo', ['copy', `oci:${join(work, 'sealed')}:v1`, `oci:${join(work, 'copy')}:v1`]);
  const { stdout: raw } = await run('skopeo', ['inspect', '--raw', `oci:${join(work, 'copy')}:v1`]);
  t.truthy(JSON.parse(raw).annotations[SIGNATURE_ANNOTATION], 'skopeo keeps the signed manifest');

  const ok = await integrityctl('image', 'verify', join(work, 'copy:v1'), '--trust', pki.trust);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  t.regex(ok.stdout, new RegExp(`manifest ${result.manifestDigest}`), 'skopeo copied the manifest byte for byte');
  t.regex(ok.stdout, /ok +chain .*"CN=Test Root CA" \(trust anchor\)/);
  t.regex(ok.stdout, /\nverified\n$/);

  const layout = await OciLayout.open(join(work, 'copy'));
  const layer2 = (await openLayoutImage(join(work, 'copy:v1'))).manifest.layers[1]!;
  const blob = layout.blobPath(layer2.digest);
  const bytes = readFileSync(blob);
  bytes[bytes.length - 12]! ^= 0x40;
  writeFileSync(blob, bytes);
  const bad = await integrityctl('image', 'verify', join(work, 'copy:v1'), '--trust', pki.trust, '--json');
  t.is(bad.code, 1);
  const report = JSON.parse(bad.stdout) as { ok: boolean; checks: { check: string; status: string; layer?: number; detail: string }[] };
  t.false(report.ok);
  const failed = report.checks.filter((c) => c.status === 'failed');
  t.deepEqual(failed.map((c) => [c.check, c.layer ?? null]), [['layer', 2], ['image-root-hash', null]]);
  t.true(failed[0]!.detail.includes(layer2.digest));
});

test.serial('verify with the wrong trust roots fails the chain; the bundle passes signature verify on its own', async (t) => {
  const other = writePkiFiles(await createPki('Other'), join(work, 'other'));
  await integrityctl('image', 'seal', join(work, 'in:v1'), '--key', pki.key, '--cert', pki.cert, '--chain', pki.chain, '-o', join(work, 'sealed2'));
  const wrong = await integrityctl('image', 'verify', join(work, 'sealed2'), '--trust', other.trust);
  t.is(wrong.code, 1);
  t.regex(wrong.stdout, /FAILED +chain +trust-anchor check failed: .*"CN=Test Root CA".*not one of the 1 trust root/);

  const { manifest } = await openLayoutImage(join(work, 'sealed2'));
  const bundleFile = join(work, 'bundle.json');
  const keys = [SIGNATURE_ANNOTATION, CERT_ANNOTATION, CHAIN_ANNOTATION];
  writeFileSync(bundleFile, JSON.stringify(Object.fromEntries(keys.map((k) => [k, manifest.annotations![k]]))));
  const message = signedMessage(manifest);
  const good = await integrityctl('signature', 'verify', '--message', message, '--bundle', bundleFile, '--trust', pki.trust);
  t.is(good.code, 0, good.stderr);
  t.regex(good.stdout, /^verified: ECDSA P-256 SHA-256 signature by "CN=Test signer p256"/);
  const forged = await integrityctl('signature', 'verify', '--message', '0'.repeat(64), '--bundle', bundleFile, '--trust', pki.trust, '--json');
  t.is(forged.code, 1);
  t.like(JSON.parse(forged.stdout), { ok: false, check: 'signature' });
  const untrusted = await integrityctl('signature', 'verify', '--message', message, '--bundle', bundleFile, '--trust', other.trust);
  t.is(untrusted.code, 1);
  t.regex(untrusted.stderr, /trust-anchor check failed/);
  t.regex(untrusted.stderr, /hint: .*trust/);
  const badInput = await integrityctl('signature', 'verify', '--message', 'xyz', '--bundle', bundleFile);
  t.is(badInput.code, 2);
});

test.serial('bad input is refused with exit status 2 and nothing is written', async (t) => {
  const mismatch = await integrityctl('image', 'seal', join(work, 'in:v1'), '--key', pki.key, '--cert', pki.trust, '-o', join(work, 'never'));
  t.is(mismatch.code, 2);
  t.regex(mismatch.stderr, /does not belong to certificate/);
  const noTag = await integrityctl('image', 'seal', join(work, 'in:v9'), '--key', pki.key, '--cert', pki.cert, '-o', join(work, 'never'));
  t.is(noTag.code, 1);
  t.regex(noTag.stderr, /no image tagged "v9"[\s\S]*hint: tags here: v1/);
  t.false(existsSync(join(work, 'never')));
});

test.serial('the flattened root hash is what Delivery Kit computes (mkfs.erofs 1.8.10 + veritysetup as delivery-kit-sdk runs them)', async (t) => {
  const skip = missing(MKFS_1_8_10) ?? veritysetupMissing();
  if (skip) return t.pass(`skipped: ${skip} (set MKFS_EROFS_1_8_10 to a reference build)`);
  await integrityctl('image', 'seal', join(work, 'in:v1'), '--key', pki.key, '--cert', pki.cert, '-o', join(work, 'sealed3'));
  const image = await openLayoutImage(join(work, 'sealed3'));
  const flat = join(work, 'flat.tar');
  const out = createWriteStream(flat);
  for await (const chunk of flattenLayers(image.manifest.layers.map((l) => () => image.streamBlob(l)))) out.write(chunk);
  out.end();
  await finished(out);
  // delivery-kit-sdk pkg/integrity/dmverity.go: mkfs.erofs with the tar on stdin, then veritysetup format into a
  // hash file pre-sized to max(10% of the image, 4 MiB), superblock on (the root hash does not depend on either).
  const erofs = join(work, 'flat.erofs');
  await new Promise<void>((resolve, reject) => {
    const mkfs = spawn(MKFS_1_8_10, ['-Uclear', '-T1750791050', '-x-1', '-Enoinline_data', '--aufs', '--tar=-', erofs], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    mkfs.stderr.on('data', (d) => (stderr += d));
    mkfs.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mkfs.erofs exited ${code}: ${stderr}`))));
    mkfs.stdin.end(readFileSync(flat));
  });
  const hashFile = join(work, 'flat.hash');
  writeFileSync(hashFile, '');
  truncateSync(hashFile, 4 * 1024 * 1024);
  const { stdout } = await run(VERITYSETUP, ['format', '--data-block-size=4096', '--hash-block-size=4096', `--salt=${DK_SALT}`, erofs, hashFile]);
  const rootHash = /Root hash:\s*([0-9a-f]{64})/.exec(stdout)?.[1];
  t.is(image.manifest.annotations![DM_VERITY_ROOT_HASH_ANNOTATION], rootHash);
});

test.serial('ctr image import accepts the sealed layout and stores the signed manifest unchanged', async (t) => {
  const skip = missing('/usr/bin/containerd') ?? missing('/usr/bin/ctr') ?? (process.getuid?.() === 0 ? undefined : 'containerd needs root');
  if (skip) return t.pass(`skipped: ${skip}`);
  await integrityctl('image', 'seal', join(work, 'in:v1'), '--key', pki.key, '--cert', pki.cert, '-o', join(work, 'sealed4'));
  const image = await openLayoutImage(join(work, 'sealed4'));
  const archive = join(work, 'sealed4.tar');
  tarLayout(join(work, 'sealed4'), archive);
  const containerd = await startContainerd(join(work, 'containerd'));
  t.teardown(() => containerd.stop());
  const ctr = (...args: string[]) => run('ctr', ['-a', containerd.address, '-n', 'integrity-test', ...args], { encoding: 'buffer', maxBuffer: 1 << 24 });
  await ctr('image', 'import', '--base-name', 'example.com/sealed', archive);
  const { stdout: list } = await ctr('image', 'ls', '-q');
  t.true(list.toString().split('\n').includes('example.com/sealed:v1'));
  const { stdout: stored } = await ctr('content', 'get', image.descriptor.digest);
  t.deepEqual(stored, image.manifestBytes);
});

/** A private containerd (no CRI) with its root, state and socket under `dir`. */
async function startContainerd(dir: string): Promise<{ address: string; stop: () => Promise<void> }> {
  const address = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  await run('mkdir', ['-p', dir]);
  writeFileSync(config, [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${address}.ttrpc"`,
  ].join('\n'));
  const child: ChildProcess = spawn('containerd', ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr!.on('data', (d) => (log += d));
  const deadline = Date.now() + 20_000;
  while (!existsSync(address)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill();
      throw new Error(`containerd did not start: ${log.slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    address,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}
