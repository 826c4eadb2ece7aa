import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTrustRoots } from '../../../snapshotter/signature/trust.js';
import { ConfigError, NotFoundError } from '../../../snapshotter/core/errors.js';
import { createPki } from '../../support/pki.js';

const pki = createPki();

function tempDir(t: import('ava').ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'trust-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a PEM file with several roots, comments between blocks', async (t) => {
  const { root, intermediate } = await pki;
  const dir = tempDir(t);
  const file = join(dir, 'bundle.pem');
  writeFileSync(file, `# our roots\n${root.certPem}\n# and another\n${intermediate.certPem}`);
  const roots = await loadTrustRoots([file]);
  t.deepEqual(roots.map((r) => r.certificate.subject), [root.cert.subject, intermediate.cert.subject]);
  t.is(roots[0]!.source, file);
});

test('a directory: *.pem and *.crt in name order, other files ignored, duplicates once', async (t) => {
  const { root } = await pki;
  const other = await createPki('Other');
  const dir = tempDir(t);
  writeFileSync(join(dir, 'b.crt'), root.certPem);
  writeFileSync(join(dir, 'a.pem'), other.root.certPem);
  writeFileSync(join(dir, 'c.pem'), root.certPem);
  writeFileSync(join(dir, 'README.md'), 'not a certificate');
  const roots = await loadTrustRoots([dir]);
  t.deepEqual(roots.map((r) => r.certificate.subject), [other.root.cert.subject, root.cert.subject]);
});

test('missing sources: an error, unless optional', async (t) => {
  const dir = tempDir(t);
  await t.throwsAsync(loadTrustRoots([join(dir, 'nope')]), { instanceOf: NotFoundError });
  t.deepEqual(await loadTrustRoots([join(dir, 'nope')], { missingOk: true }), []);
});

test('a private key or an empty file in the trust directory is refused', async (t) => {
  const { leaves } = await pki;
  const dir = tempDir(t);
  writeFileSync(join(dir, 'key.pem'), leaves.p256.keyPem);
  await t.throwsAsync(loadTrustRoots([dir]), { instanceOf: ConfigError, message: /PRIVATE KEY/ });
  const dir2 = tempDir(t);
  writeFileSync(join(dir2, 'empty.pem'), '');
  await t.throwsAsync(loadTrustRoots([dir2]), { instanceOf: ConfigError, message: /no PEM certificate/ });
});
