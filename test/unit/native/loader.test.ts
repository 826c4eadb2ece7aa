/** The loader explains why the addon cannot be used, and importing the facade never loads it. */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FailedPreconditionError } from '../../../snapshotter/core/errors.js';
import { addonPath, loadNativeFrom } from '../../../snapshotter/native/loader.js';

function tempDir(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'native-loader-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a missing addon says it is not built and how to build it', (t) => {
  const path = join(tempDir(t), 'integrity_native.node');
  const err = t.throws(() => loadNativeFrom(path), { instanceOf: FailedPreconditionError });
  t.is(err?.message, `the native addon is not built: ${path} does not exist`);
  t.regex(err?.hint ?? '', /npm run build:native/);
  t.regex(err?.hint ?? '', /npm rebuild containerd-integrity/);
});

test('a file that is no shared library says so and keeps the loader error', (t) => {
  const path = join(tempDir(t), 'integrity_native.node');
  writeFileSync(path, 'not an ELF file at all, just text\n'.repeat(4));
  const err = t.throws(() => loadNativeFrom(path), { instanceOf: FailedPreconditionError });
  t.regex(err?.message ?? '', /is not a shared library for this machine/);
  t.regex(err?.message ?? '', /invalid ELF header/);
  t.regex(err?.hint ?? '', /^rebuild it on this machine/);
  t.true(err?.cause instanceof Error);
});

test('an addon that loads but lacks our functions is called out of date', (t) => {
  // An older build of our addon is what this catches; a CommonJS file, which
  // require() loads just the same, stands in for it.
  const path = join(tempDir(t), 'integrity_native.node.js');
  writeFileSync(path, 'module.exports = { loopGetFree() {} };\n');
  const err = t.throws(() => loadNativeFrom(path), { instanceOf: FailedPreconditionError });
  t.regex(err?.message ?? '', /is out of date: it lacks loopConfigure, loopSetFd, /);
});

test('the addon path is build/Release under the package root', (t) => {
  const root = fileURLToPath(new URL('../../../../', import.meta.url));
  t.is(addonPath(), join(root, 'build', 'Release', 'integrity_native.node'));
});

test('importing the facade does not load the addon', async (t) => {
  const facade = fileURLToPath(new URL('../../../snapshotter/native/index.js', import.meta.url));
  const script = `await import(${JSON.stringify(facade)});
const maps = (await import('node:fs')).readFileSync('/proc/self/maps', 'utf8');
process.stdout.write(maps.includes('integrity_native.node') ? 'loaded' : 'not loaded');`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script]);
  t.is(stdout, 'not loaded');
});
