import test from 'ava';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AtomicFile } from '../../../snapshotter/core/atomic-file.js';

function dir(t: import('ava').ExecutionContext): string {
  const path = mkdtempSync(join(tmpdir(), 'atomic-file-'));
  t.teardown(() => rmSync(path, { recursive: true, force: true }));
  return path;
}

test('commit renames the whole file into place and leaves no temporary', (t) => {
  const d = dir(t);
  const file = AtomicFile.create(join(d, 'out'));
  file.write(Buffer.from('world'), 6);
  file.write(Buffer.from('hello '), 0);
  t.deepEqual(readdirSync(d), [file.tempPath.slice(d.length + 1)], 'only the temporary while writing');
  file.commit();
  t.deepEqual(readdirSync(d), ['out']);
  t.is(readFileSync(join(d, 'out'), 'utf8'), 'hello world');
});

test('a commit that cannot rename (the target is a directory) fails and leaves no temporary', (t) => {
  const d = dir(t);
  mkdirSync(join(d, 'target'));
  const file = AtomicFile.create(join(d, 'target'));
  file.write(Buffer.from('data'));
  t.throws(() => file.commit(), { code: 'EISDIR' });
  file.abort();
  t.deepEqual(readdirSync(d), ['target']);
});

test('abort drops the temporary and may be called twice', (t) => {
  const d = dir(t);
  const file = AtomicFile.create(join(d, 'out'));
  file.write(Buffer.from('partial'));
  file.abort();
  file.abort();
  t.deepEqual(readdirSync(d), []);
});
