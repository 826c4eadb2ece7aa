/**
 * Schema migrations, versioned by `PRAGMA user_version`: migration i brings
 * the schema from version i to i+1. Append only; never edit a shipped step.
 */
import type Database from 'better-sqlite3';
import { FailedPreconditionError } from '../../core/errors.js';

const MIGRATIONS: readonly string[] = [
  // 1: snapshots with their parent link and layer, labels.
  `
  CREATE TABLE snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace   TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    -- containerd.services.snapshots.v1.Kind numbers: 1 view, 2 active, 3 committed
    kind        INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
    -- parents are committed snapshots of the same namespace; ids survive Commit
    parent_id   INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT,
    created_ns  INTEGER NOT NULL,
    updated_ns  INTEGER NOT NULL,
    size        INTEGER NOT NULL DEFAULT 0,
    inodes      INTEGER NOT NULL DEFAULT 0,
    root_hash   TEXT,
    UNIQUE (namespace, key)
  );
  CREATE INDEX snapshots_by_parent ON snapshots (parent_id);
  CREATE TABLE labels (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (snapshot_id, name)
  ) WITHOUT ROWID;
  `,
  // 2: layers built from containerd's layer blobs, the images they belong to, read-only container roots.
  `
  -- committed from a layer blob: the OCI chain ID its diff ID was checked against
  ALTER TABLE snapshots ADD COLUMN chain_id TEXT;
  -- a read-only active snapshot (protected image): the mountpoints layer above its parents, no upper dir
  ALTER TABLE snapshots ADD COLUMN mountpoints_id INTEGER REFERENCES snapshots(id) ON DELETE RESTRICT;
  CREATE INDEX snapshots_by_mountpoints ON snapshots (mountpoints_id);
  -- images known to use a committed layer (recorded at pull; never changed by Update)
  CREATE TABLE layer_images (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    image       TEXT    NOT NULL,
    PRIMARY KEY (snapshot_id, image)
  ) WITHOUT ROWID;
  `,
  // 3: layers checked against an image signature when they were converted.
  `
  CREATE TABLE layer_signatures (
    snapshot_id INTEGER PRIMARY KEY REFERENCES snapshots(id) ON DELETE CASCADE,
    -- the expected dm-verity root hash: the signed list's entry, or recomputed from a blob whose diff ID is signed
    root_hash   TEXT NOT NULL,
    binding     TEXT NOT NULL CHECK (binding IN ('signed-list', 'signed-digest')),
    image       TEXT NOT NULL,
    manifest    TEXT NOT NULL,
    signer      TEXT NOT NULL
  );
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings `db` to SCHEMA_VERSION, all steps in one transaction. */
export function migrate(db: Database.Database): void {
  const version = Number(db.pragma('user_version', { simple: true }));
  if (version > SCHEMA_VERSION) {
    throw new FailedPreconditionError(
      `metadata database ${db.name} has schema version ${version}, newer than the ${SCHEMA_VERSION} this integrityctl knows`,
      { hint: 'run the integrityctl version that wrote it, or a newer one' },
    );
  }
  if (version === SCHEMA_VERSION) return;
  if (db.readonly) {
    throw new FailedPreconditionError(
      `metadata database ${db.name} has schema version ${version}, older than the ${SCHEMA_VERSION} this integrityctl reads`,
      { hint: 'start the snapshotter of this version once (it migrates the database), or use the integrityctl that wrote it' },
    );
  }
  db.transaction(() => {
    for (let v = version; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
