import test from 'ava';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FailedPreconditionError } from '../../../../snapshotter/core/errors.js';
import { SCHEMA_VERSION } from '../../../../snapshotter/service/metadata/schema.js';
import { SqliteMetadataStore } from '../../../../snapshotter/service/metadata/sqlite.js';
import { steppingClock } from '../../../support/metadata-store-suite.js';

function tempDb(t: { teardown(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'schema-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'metadata.db');
}

test('a new database gets the current schema version in WAL mode', (t) => {
  const path = tempDb(t);
  new SqliteMetadataStore(path, { clock: steppingClock() }).close();
  const db = new Database(path);
  t.teardown(() => db.close());
  t.is(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  t.is(db.pragma('journal_mode', { simple: true }), 'wal');
});

test('snapshots, labels and exact times survive reopening', (t) => {
  const path = tempDb(t);
  const clock = steppingClock(1_234_567_890_987_654_321n);
  const first = new SqliteMetadataStore(path, { clock });
  first.createSnapshot('ns', 'active', 'a', '', { l: 'v' });
  first.commitActive('ns', 'a', 'c', { usage: { size: 1, inodes: 1 }, rootHash: '00'.repeat(32) }, { l: 'w' });
  first.createSnapshot('ns', 'view', 'v', 'c', {});
  const before = first.walk('ns', []);
  first.close();
  const second = new SqliteMetadataStore(path, { clock });
  t.teardown(() => second.close());
  t.deepEqual(second.walk('ns', []), before);
  t.is(second.getInfo('ns', 'c').info.created, 1_234_567_890_987_654_322n);
});

test('a database from a newer version is refused and left alone', (t) => {
  const path = tempDb(t);
  const db = new Database(path);
  db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  db.close();
  const err = t.throws(() => new SqliteMetadataStore(path, { clock: steppingClock() }), { instanceOf: FailedPreconditionError });
  t.regex(err!.message, new RegExp(`schema version ${SCHEMA_VERSION + 1}`));
  const again = new Database(path);
  t.teardown(() => again.close());
  t.is(again.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
  t.deepEqual(again.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all(), []);
});
