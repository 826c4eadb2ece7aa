/** What a signature vouched for is recorded with the layer (schema version 3) and survives migration and reopening. */
import test from 'ava';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../../../../snapshotter/service/metadata/sqlite.js';
import type { SignedLayer } from '../../../../snapshotter/service/metadata/types.js';
import { steppingClock } from '../../../support/metadata-store-suite.js';

const SIGNED: SignedLayer = { rootHash: 'ab'.repeat(32), binding: 'signed-list', image: 'r/app:1', manifest: `sha256:${'c'.repeat(64)}`, signer: 'CN=Test signer' };
const LAYER = { usage: { size: 4096, inodes: 2 }, rootHash: 'ab'.repeat(32) };

test('a signed layer, committed either way, is read back with its record; others have none; removal takes it along', (t) => {
  const store = new SqliteMetadataStore(':memory:', { clock: steppingClock() });
  t.teardown(() => store.close());
  const fast = store.insertCommitted('ns', 'c1', '', { ...LAYER, signed: SIGNED }, {});
  store.createSnapshot('ns', 'active', 'a', 'c1', {});
  const slow = store.commitActive('ns', 'a', 'c2', { ...LAYER, signed: { ...SIGNED, binding: 'signed-digest' } }, {});
  store.insertCommitted('ns', 'plain', '', LAYER, {});
  t.deepEqual(store.committedLayer(fast.id)?.signed, SIGNED);
  t.is(store.layerOrigin('ns', 'c2').signed?.binding, 'signed-digest');
  t.is(store.committedLayer(slow.id)?.signed?.binding, 'signed-digest');
  t.false('signed' in store.layerOrigin('ns', 'plain'));
  t.false('signed' in store.committedLayer(store.layerOrigin('ns', 'plain').id)!);
  store.remove('ns', 'c2');
  store.remove('ns', 'c1');
  store.insertCommitted('ns', 'again', '', LAYER, {});
  t.is(store.committedLayer(store.layerOrigin('ns', 'again').id)?.signed, undefined, 'no record is left to a later id');
});

test('a version 2 database is migrated: its layers stay, unsigned', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'schema3-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'metadata.db');
  const first = new SqliteMetadataStore(path, { clock: steppingClock() });
  first.insertCommitted('ns', 'c1', '', LAYER, {});
  first.close();
  // Back to what version 2 had.
  const db = new Database(path);
  db.exec('DROP TABLE layer_signatures');
  db.pragma('user_version = 2');
  db.close();
  const second = new SqliteMetadataStore(path, { clock: steppingClock() });
  t.teardown(() => second.close());
  const { id } = second.layerOrigin('ns', 'c1');
  t.like(second.committedLayer(id), { rootHash: LAYER.rootHash, signed: undefined });
  second.insertCommitted('ns', 'c2', '', { ...LAYER, signed: SIGNED }, {});
  t.deepEqual(second.layerOrigin('ns', 'c2').signed, SIGNED);
});
