/**
 * Signed images on a node, end to end: a real containerd 1.6 with the
 * integrity snapshotter (one stack for the file), a local registry, images
 * sealed with `integrityctl image seal` under a generated PKI whose root is
 * the snapshotter's only trust root, and `signatures.required_images` set.
 *
 * A sealed image runs (read-only root; its layers recorded with the signed
 * root hashes; verity "auto", which is plain mounts on this kernel), through
 * `ctr image import` (Commit from the blob) and a CRI pull (the fast path).
 * Each way a signed image can be wrong is refused — the layer not committed,
 * the ctr/CRI error and the snapshotter's `layer refused` log line naming the
 * image, the layer and the check, the refusals metric counting the reason:
 *   (a) the layer-root-hashes list edited and re-signed by an untrusted key,
 *       and (a') by a trusted one — the root-hash comparison;
 *   (b) signed under a CA that is not a trust root;
 *   (c) an intermediate that is not a CA;
 *   (d) an intermediate not valid when the leaf was issued;
 *   (e) the bundle of another image pasted on;
 *   (f) a layer blob replaced in containerd's content store after the fetch;
 *   (g) an image that must be signed and is not (import and CRI).
 * `integrityctl image verify --containerd` shows the same from the content store,
 * and SIGHUP makes a newly added trust root count.
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { wallClock } from '../../../snapshotter/core/clock.js';
import { sealImage } from '../../../snapshotter/image/seal.js';
import { LAYER_ROOT_HASHES_ANNOTATION, parseLayerRootHashes } from '../../../snapshotter/oci/annotations.js';
import { SqliteMetadataStore } from '../../../snapshotter/service/metadata/sqlite.js';
import type { SignedLayer } from '../../../snapshotter/service/metadata/types.js';
import { CommandError } from '../../support/command.js';
import { containerdSkipReason } from '../../support/containerd.js';
import { CriCallError } from '../../support/cri-client.js';
import { startIntegrityStack, type IntegrityStack, type LogLine } from '../../support/integrity-snapshotter.js';
import { buildImage, busyboxImage, chainIds, makeTar, type FileSpec, type TestImage } from '../../support/oci-image.js';
import { issue, type Issued } from '../../support/pki.js';
import { Registry, registrySkipReason } from '../../support/registry.js';
import { bundleOf, readManifest, resign, writeSignerFiles, type SignerFiles } from '../../support/signed-image.js';

const MAIN = fileURLToPath(new URL('../../../snapshotter/cli/main.js', import.meta.url));
const run = promisify(execFile);

const skip = containerdSkipReason() ?? registrySkipReason();
const serial = skip ? test.skip : test.serial;
if (skip) test('integrity snapshotter: signed images', (t) => t.pass(`skipped: ${skip}`));

const HOST = 'registry.test';
const LOCAL = 'integrity.test';
const REQUIRED = [`${LOCAL}/required/*`, `${HOST}/required/*`];
const DAY = 24 * 3600 * 1000;

let work: string;
let registry: Registry;
let stack: IntegrityStack;
let rootPem: string;
let trusted: SignerFiles;
let rogue: SignerFiles;
let underNonCa: SignerFiles;
let underExpired: SignerFiles;
/** The layouts, by name: `<work>/<name>`, tag v1. */
const images = new Map<string, TestImage>();

test.before(async () => {
  if (skip) return;
  work = await mkdtemp('/tmp/integrity-signed-');
  const pki = join(work, 'pki');
  await mkdir(join(work, 'trust.d'), { recursive: true });
  await mkdir(pki);
  const root = await issue({ subject: 'CN=Node Root CA', ca: true });
  const intermediate = await issue({ subject: 'CN=Node Intermediate CA', issuer: root, ca: { pathLength: 0 } });
  const chain = (leaf: Issued, inter: Issued, top: Issued) => [leaf, [inter, top]] as const;
  trusted = writeSignerFiles(pki, 'trusted', ...chain(await issue({ subject: 'CN=Release signer', issuer: intermediate }), intermediate, root));
  const rogueRoot = await issue({ subject: 'CN=Rogue Root CA', ca: true });
  const rogueInter = await issue({ subject: 'CN=Rogue Intermediate CA', issuer: rogueRoot, ca: { pathLength: 0 } });
  rogue = writeSignerFiles(pki, 'rogue', ...chain(await issue({ subject: 'CN=Rogue signer', issuer: rogueInter }), rogueInter, rogueRoot));
  const notCa = await issue({ subject: 'CN=Not a CA', issuer: root, ca: false });
  underNonCa = writeSignerFiles(pki, 'non-ca', ...chain(await issue({ subject: 'CN=Signer under a non-CA', issuer: notCa }), notCa, root));
  const now = Date.now();
  const expired = await issue({ subject: 'CN=Expired Intermediate CA', issuer: root, ca: { pathLength: 0 }, notBefore: new Date(now - 60 * DAY), notAfter: new Date(now - 40 * DAY) });
  underExpired = writeSignerFiles(pki, 'expired', ...chain(await issue({ subject: 'CN=Signer under an expired CA', issuer: expired }), expired, root));
  rootPem = join(work, 'trust.d', 'root.pem');
  await writeFile(rootPem, root.certPem);

  // Every image but the runnable ones has layers of its own, so each refusal is its own conversion.
  const own = (name: string, n = 1): FileSpec[][] => Array.from({ length: n }, (_, i) => [{ path: 'data/' }, { path: `data/${name}-${i + 1}`, data: `${name} ${i + 1}\n` }]);
  const add = async (name: string, build: (dir: string) => Promise<TestImage>) => images.set(name, await build(join(work, name)));
  await add('app', (dir) => busyboxImage(dir, { tag: 'v1', layers: own('app') }));
  await add('cri', (dir) => busyboxImage(dir, { tag: 'v1', layers: own('cri', 2) }));
  for (const name of ['tampered', 'rogue', 'non-ca', 'expired', 'copied', 'swapped', 'required']) await add(name, (dir) => buildImage(dir, own(name), { tag: 'v1' }));
  await add('mismatch', (dir) => buildImage(dir, own('mismatch', 2), { tag: 'v1' }));

  // The runnable image is sealed by the CLI; the others by the same code in-process (faster).
  await run(process.execPath, [MAIN, 'image', 'seal', `${join(work, 'app')}:v1`, '--key', trusted.key, '--cert', trusted.cert, '--chain', trusted.chain, '-o', `${join(work, 'app')}:v1`]);
  const seal = (name: string, signer: SignerFiles) => sealImage({ input: `${join(work, name)}:v1`, output: `${join(work, name)}:v1`, signer: signer.signer });
  for (const name of ['cri', 'tampered', 'mismatch', 'swapped']) await seal(name, trusted);
  await seal('rogue', rogue);
  await seal('non-ca', underNonCa);
  await seal('expired', underExpired);
  // (a) one entry of the signed list changed, signed again by a key the node does not trust; (a') by one it does.
  const editLast = (annotations: Record<string, string>) => {
    const hashes = annotations[LAYER_ROOT_HASHES_ANNOTATION]!.split(',');
    hashes[hashes.length - 1] = 'f'.repeat(64);
    return { ...annotations, [LAYER_ROOT_HASHES_ANNOTATION]: hashes.join(',') };
  };
  await resign(join(work, 'tampered'), 'v1', editLast, rogue.signer);
  await resign(join(work, 'mismatch'), 'v1', editLast, trusted.signer);
  // (e) the sealed app's bundle on an image it was not made for.
  const appBundle = bundleOf(await readManifest(join(work, 'app'), 'v1'));
  await resign(join(work, 'copied'), 'v1', (annotations) => ({ ...annotations, ...appBundle }));

  registry = await Registry.start();
  for (const name of ['cri', 'mismatch', 'swapped', 'required']) {
    await registry.push(`${join(work, name)}:v1`, `${name === 'required' ? 'required' : 'signed'}/${name}:v1`);
  }
  stack = await startIntegrityStack({
    registryMirrors: { [HOST]: registry.url },
    signatures: { requiredImages: REQUIRED, trustDirs: [join(work, 'trust.d')] },
    metricsAddress: '127.0.0.1:0',
  });
  await stack.withLogs(() => stack.containerd.importLayout(join(work, 'app'), `${LOCAL}/signed/app`));
});

test.after.always(async () => {
  await stack?.stop();
  await registry?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** What the snapshotter recorded for the layer it checked against `chainId`. */
function signedRecord(chainId: string): SignedLayer | undefined {
  const store = new SqliteMetadataStore(join(stack.snapshotter.root, 'metadata.db'), { clock: wallClock(), readOnly: true });
  try {
    const layer = store.listAll().find((s) => s.kind === 'committed' && store.layerOrigin(s.namespace, s.key).chainId === chainId);
    return layer && store.layerOrigin(layer.namespace, layer.key).signed;
  } finally {
    store.close();
  }
}

/** The value of one series of the daemon's metrics, e.g. `containerd_integrity_layer_refusals_total{reason="corrupted"}`. */
async function metric(series: string): Promise<number> {
  const serving = stack.snapshotter.logs().filter((l) => l.msg === 'snapshotter serving').at(-1);
  const text = await (await fetch(`http://${String(serving?.metrics)}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return Number(line?.split(' ').at(-1));
}

const refusals = (reason: string) => metric(`containerd_integrity_layer_refusals_total{reason="${reason}"}`);

/** The message the caller got: ctr's stderr (not containerd's log tail the helpers add), or the CRI status details. */
function callerText(err: unknown): string {
  if (err instanceof CommandError) return err.stderr;
  if (err instanceof CriCallError) return err.details;
  throw err;
}

interface Expected {
  image: string;
  /** 1-based layer that is refused. */
  layer: number;
  check: string;
  reason: string;
  /** What the caller's error says after "is refused: ". */
  says: RegExp;
}

/** Runs `attempt`, which must fail with the snapshotter's refusal of `expected`; returns the caller's text. */
async function expectRefusal(t: ExecutionContext, name: string, attempt: () => Promise<unknown>, expected: Expected): Promise<string> {
  const image = images.get(name)!;
  const digest = image.manifest.layers[expected.layer - 1]!.digest;
  const before = await refusals(expected.reason);
  const mark = stack.snapshotter.logs().length;
  const text = callerText(await attempt().then(() => undefined, (err: unknown) => err) ?? new Error(`${name}: not refused`));
  const where = `${escape(`layer ${expected.layer} (${digest}) of image ${expected.image} (manifest sha256:`)}[0-9a-f]{64}${escape(`) is refused: ${expected.check} check failed: `)}`;
  t.regex(text, new RegExp(where + expected.says.source), 'the caller is told which image, layer and check');
  const line = stack.snapshotter.logs().slice(mark).find((l: LogLine) => l.msg === 'layer refused');
  t.like(line, { image: expected.image, layer: expected.layer, digest, check: expected.check, reason: expected.reason });
  t.is(await refusals(expected.reason), before + 1, `containerd_integrity_layer_refusals_total{reason="${expected.reason}"}`);
  t.is(stack.snapshotter.layerImageOf(chainIds(image.tars)[expected.layer - 1]!), undefined, 'the layer is not committed');
  return text;
}

/** A gzip layer of `size` bytes holding other content: payloads and levels tried until the compressed size fits. */
function sameSizeLayer(size: number): Buffer {
  for (const word of ['hacked', 'evil', 'pwned', 'owned']) {
    for (let n = 0; n < 100; n++) {
      for (let level = 1; level <= 9; level++) {
        const blob = gzipSync(makeTar([{ path: 'data/' }, { path: 'data/swapped-1', data: `${word} ${n}\n` }]), { level });
        if (blob.length === size) return blob;
      }
    }
  }
  throw new Error(`no replacement layer of ${size} bytes found`);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

const importAs = (name: string, repository: string) => () => stack.containerd.importLayout(join(work, name), repository);
const criPull = (reference: string) => () => stack.containerd.cri.pullImage(reference);

serial('a sealed image imported with ctr runs, with a read-only root, its layers recorded with the signed root hashes', async (t) => {
  const app = images.get('app')!;
  const sealed = await readManifest(join(work, 'app'), 'v1');
  const signedHashes = parseLayerRootHashes(sealed.annotations![LAYER_ROOT_HASHES_ANNOTATION]!, 2, 'app');
  chainIds(app.tars).forEach((chainId, i) => {
    t.like(signedRecord(chainId), { rootHash: signedHashes[i], binding: 'signed-list', image: `${LOCAL}/signed/app:v1`, signer: 'CN=Release signer' }, `layer ${i + 1}`);
  });
  const { stdout } = await stack.withLogs(() => stack.containerd.run(`${LOCAL}/signed/app:v1`, ['/bin/sh', '-c', 'cat /data/app-1; touch /x 2>&1; echo "rc=$?"']));
  t.regex(stdout, /^app 1\n.*Read-only file system\nrc=1\n$/s);
  const decision = stack.snapshotter.logs().filter((l) => l.msg === 'container root filesystem').at(-1);
  t.like(decision, { readOnly: true });
  t.regex(String(decision?.reason), /signature of image integrity\.test\/signed\/app:v1/);
});

serial('a sealed image pulled by CRI: each layer the snapshotter fetched is checked against the signature at its Prepare, and it runs', async (t) => {
  const cri = images.get('cri')!;
  const mark = stack.snapshotter.logs().length;
  const fromRegistry = () => metric('containerd_integrity_layers_built_total{from="registry"}');
  const before = await fromRegistry();
  await stack.withLogs(criPull(`${HOST}/signed/cri:v1`));
  t.is(await fromRegistry(), before + 2, 'both own layers came from the registry (metrics)');
  const matched = stack.snapshotter.logs().slice(mark).filter((l) => l.msg === 'layer matches its image signature');
  t.deepEqual(matched.map((l) => [l.layer, l.binding]), [[2, 'signed-list'], [3, 'signed-list']], 'busybox was there already; both own layers checked');
  const chains = chainIds(cri.tars);
  t.truthy(stack.snapshotter.logs().slice(mark).find((l) => l.chainId === chains[2] && l.source === 'blob' && /at Prepare/.test(String(l.msg))), 'the top layer took the fast path');
  const { stdout } = await stack.withLogs(() => stack.containerd.run(`${HOST}/signed/cri:v1`, ['/bin/cat', '/data/cri-2']));
  t.is(stdout, 'cri 2\n');
});

serial('(a) the signed root-hash list edited and signed again by an untrusted key: refused at import', async (t) => {
  await expectRefusal(t, 'tampered', importAs('tampered', `${LOCAL}/signed/tampered`), {
    image: `${LOCAL}/signed/tampered:v1`, layer: 1, check: 'trust-anchor', reason: 'signer_untrusted',
    says: /the path ends at root "CN=Rogue Root CA" \(serial [0-9a-f]+\), which is not one of the 1 trust root\(s\)/,
  });
});

serial("(a') the signed list edited and signed again by a trusted key: the root-hash comparison refuses the layer on the fast path", async (t) => {
  const mark = stack.snapshotter.logs().length;
  const text = await expectRefusal(t, 'mismatch', criPull(`${HOST}/signed/mismatch:v1`), {
    image: `${HOST}/signed/mismatch:v1`, layer: 2, check: 'root-hash', reason: 'root_hash_mismatch',
    says: /the layer converts to root hash [0-9a-f]{64}, its signed io\.containerd-integrity\.layer-root-hashes entry is f{64}/,
  });
  t.regex(text, /seal the image again/, 'and how to fix it');
  // From the log: the failed pull's lease is gone, and containerd's garbage collector may take the layer any moment.
  const passed = stack.snapshotter.logs().slice(mark).find((l) => l.msg === 'layer matches its image signature' && l.layer === 1);
  t.like(passed, { image: `${HOST}/signed/mismatch:v1`, digest: images.get('mismatch')!.manifest.layers[0]!.digest }, 'the layer below, whose entry is right, passed');
});

serial('(b) signed under a CA that is not a trust root: refused at import', async (t) => {
  await expectRefusal(t, 'rogue', importAs('rogue', `${LOCAL}/signed/rogue`), {
    image: `${LOCAL}/signed/rogue:v1`, layer: 1, check: 'trust-anchor', reason: 'signer_untrusted', says: /the path ends at root "CN=Rogue Root CA"/,
  });
});

serial('(c) an intermediate that is not a CA: refused at import', async (t) => {
  await expectRefusal(t, 'non-ca', importAs('non-ca', `${LOCAL}/signed/non-ca`), {
    image: `${LOCAL}/signed/non-ca:v1`, layer: 1, check: 'ca-constraint', reason: 'signer_untrusted', says: /"CN=Not a CA" \(serial [0-9a-f]+\) issued .* but is not a CA/,
  });
});

serial('(d) an intermediate that was not valid when the leaf was issued: refused at import', async (t) => {
  await expectRefusal(t, 'expired', importAs('expired', `${LOCAL}/signed/expired`), {
    image: `${LOCAL}/signed/expired:v1`, layer: 1, check: 'validity', reason: 'signer_untrusted', says: /"CN=Expired Intermediate CA" .* is valid from .* not at the leaf's NotBefore/,
  });
});

serial('(e) a bundle copied from another image: the signature is over another payload, refused at import', async (t) => {
  await expectRefusal(t, 'copied', importAs('copied', `${LOCAL}/signed/copied`), {
    image: `${LOCAL}/signed/copied:v1`, layer: 1, check: 'signature', reason: 'signature_invalid', says: /the ECDSA P-256 SHA-256 signature does not verify with the key of "CN=Release signer" over message [0-9a-f]{64}/,
  });
});

serial("(f) a layer blob replaced in containerd's content store after the fetch: the streaming digest check refuses it", async (t) => {
  const swapped = images.get('swapped')!;
  const reference = `${HOST}/signed/swapped:v1`;
  await stack.withLogs(() => stack.containerd.ctr(['content', 'fetch', '--hosts-dir', stack.containerd.hostsDir!, reference]));
  // What an attacker with write access to containerd's root would do: another valid layer of the same size
  // (containerd reads as many bytes as its metadata says) under the signed digest.
  const { digest, size } = swapped.manifest.layers[0]!;
  await writeFile(join(stack.containerd.root, 'io.containerd.content.v1.content', 'blobs', 'sha256', digest.slice('sha256:'.length)), sameSizeLayer(size));
  await expectRefusal(t, 'swapped', criPull(reference), {
    image: reference, layer: 1, check: 'blob', reason: 'content_mismatch', says: new RegExp(`the blob in containerd's content store is not the signed one: layer digest mismatch: expected ${digest}, read sha256:`),
  });
});

serial('(g) an image that must be signed and is not: refused at import and on a CRI pull', async (t) => {
  await expectRefusal(t, 'required', importAs('required', `${LOCAL}/required/app`), {
    image: `${LOCAL}/required/app:v1`, layer: 1, check: 'bundle', reason: 'signature_missing', says: /the manifest is not signed, and signatures\.required_images names the image \("integrity\.test\/required\/\*"\)/,
  });
  await expectRefusal(t, 'required', criPull(`${HOST}/required/required:v1`), {
    image: `${HOST}/required/required:v1`, layer: 1, check: 'bundle', reason: 'signature_missing', says: /the manifest is not signed, and signatures\.required_images names the image \("registry\.test\/required\/\*"\)/,
  });
});

serial("`image verify --containerd` shows every check of an image in containerd's content store, or read from its registry", async (t) => {
  const verify = (ref: string, extra: string[] = []) => run(process.execPath, [
    MAIN, 'image', 'verify', '--containerd', ref, '--address', stack.containerd.address, '--namespace', 'k8s.io', '--trust', rootPem, '--json', ...extra,
  ]).then(({ stdout }) => ({ status: 0, stdout }), (err: { code: number; stdout: string }) => ({ status: err.code, stdout: err.stdout }));
  const good = await verify(`${LOCAL}/signed/app:v1`);
  t.is(good.status, 0);
  const report = JSON.parse(good.stdout) as { ok: boolean; checks: { check: string; status: string }[] };
  t.true(report.ok);
  t.deepEqual(report.checks.map((c) => `${c.check} ${c.status}`), ['bundle ok', 'chain ok', 'signature ok', 'layer-root-hashes ok', 'layer ok', 'layer ok', 'image-root-hash ok']);

  const copied = await verify(`${LOCAL}/signed/copied:v1`);
  t.is(copied.status, 1);
  const failed = (JSON.parse(copied.stdout) as typeof report).checks.filter((c) => c.status === 'failed').map((c) => c.check);
  t.deepEqual(failed, ['signature']);

  // Pulled by CRI, its own layer blobs came to the snapshotter from the registry and containerd does not
  // hold them (busybox's it has from the import): verify reads them from the registry, through the same hosts.
  const { stdout: content } = await stack.containerd.ctr(['content', 'ls', '--quiet']);
  const criLayers = (await readManifest(join(work, 'cri'), 'v1')).layers.map((l) => l.digest);
  t.true(criLayers.filter((d) => !content.includes(d)).length > 0);
  const pulled = await verify(`${HOST}/signed/cri:v1`, ['--hosts-dir', join(stack.snapshotter.dir, 'hosts')]);
  t.is(pulled.status, 0, pulled.stdout);
  t.deepEqual((JSON.parse(pulled.stdout) as typeof report).checks.map((c) => `${c.check} ${c.status}`), [
    'bundle ok', 'chain ok', 'signature ok', 'layer-root-hashes ok', ...criLayers.map(() => 'layer ok'), 'image-root-hash ok',
  ]);
});

serial('SIGHUP reloads the trust roots: once its root is trusted, the image refused in (b) is imported', async (t) => {
  const mark = stack.snapshotter.logs().length;
  await writeFile(join(work, 'trust.d', 'rogue.pem'), await readFile(rogue.chain, 'utf8').then((pem) => pem.slice(pem.lastIndexOf('-----BEGIN'))));
  process.kill(stack.snapshotter.pid!, 'SIGHUP');
  for (const deadline = Date.now() + 10_000; !stack.snapshotter.logs().slice(mark).some((l) => l.msg === 'trust roots loaded'); ) {
    if (Date.now() > deadline) t.fail(`no reload logged:\n${stack.snapshotter.logTail(10)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const loaded = stack.snapshotter.logs().slice(mark).find((l) => l.msg === 'trust roots loaded')!.roots as string[];
  t.deepEqual(loaded.map((r) => r.split(' (')[0]).sort(), ['CN=Node Root CA', 'CN=Rogue Root CA']);
  await stack.withLogs(importAs('rogue', `${LOCAL}/signed/rogue`));
  t.like(signedRecord(chainIds(images.get('rogue')!.tars)[0]!), { signer: 'CN=Rogue signer', image: `${LOCAL}/signed/rogue:v1` });
});
