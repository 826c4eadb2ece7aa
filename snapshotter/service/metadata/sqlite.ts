/**
 * MetadataStore on SQLite (better-sqlite3): WAL, synchronous=FULL so that a
 * committed transaction survives power loss before the file work that follows
 * it (containerd's order: change metadata, then delete files), foreign keys on.
 * Integers come back as bigint so nanosecond times stay exact.
 */
import Database from 'better-sqlite3';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import { parseFilters } from '../../core/filters.js';
import type { Clock } from '../../core/clock.js';
import { snapshotFields } from './fields.js';
import { checkLabels } from './labels.js';
import { migrate } from './schema.js';
import type { MetadataStore } from './store.js';
import type {
  CommittedLayer,
  Kind,
  Labels,
  LayerOrigin,
  LayerRecord,
  MountableSnapshot,
  SignedLayer,
  Snapshot,
  SnapshotInfo,
  StoredSnapshot,
  Usage,
} from './types.js';

const KIND_CODE: Record<Kind, bigint> = { view: 1n, active: 2n, committed: 3n };
const KIND_OF_CODE = new Map<bigint, Kind>(Object.entries(KIND_CODE).map(([k, v]) => [v, k as Kind]));

interface SnapshotRow {
  id: bigint;
  namespace: string;
  key: string;
  kind: bigint;
  parent_id: bigint | null;
  parent: string | null;
  mountpoints_id: bigint | null;
  created_ns: bigint;
  updated_ns: bigint;
  size: bigint;
  inodes: bigint;
}

interface LabelRow {
  snapshot_id: bigint;
  name: string;
  value: string;
}

const SELECT_SNAPSHOT = `
  SELECT s.id, s.namespace, s.key, s.kind, s.parent_id, p.key AS parent, s.mountpoints_id,
         s.created_ns, s.updated_ns, s.size, s.inodes
  FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent_id`;

function prepareStatements(db: Database.Database) {
  return {
    byKey: db.prepare<[string, string], SnapshotRow>(`${SELECT_SNAPSHOT} WHERE s.namespace = ? AND s.key = ?`),
    byNamespace: db.prepare<[string], SnapshotRow>(`${SELECT_SNAPSHOT} WHERE s.namespace = ? ORDER BY s.key`),
    all: db.prepare<[], SnapshotRow>(`${SELECT_SNAPSHOT} ORDER BY s.id`),
    committedLayer: db.prepare<[bigint], { id: bigint; namespace: string; key: string; root_hash: string }>(
      'SELECT id, namespace, key, root_hash FROM snapshots WHERE id = ? AND kind = 3 AND root_hash IS NOT NULL',
    ),
    labels: db.prepare<[bigint], LabelRow>('SELECT snapshot_id, name, value FROM labels WHERE snapshot_id = ?'),
    labelsOfNamespace: db.prepare<[string], LabelRow>(
      'SELECT l.snapshot_id, l.name, l.value FROM labels l JOIN snapshots s ON s.id = l.snapshot_id WHERE s.namespace = ?',
    ),
    chain: db.prepare<[bigint], { id: bigint }>(`
      WITH RECURSIVE chain(id, parent_id, depth) AS (
        SELECT id, parent_id, 0 FROM snapshots WHERE id = ?
        UNION ALL
        SELECT s.id, s.parent_id, c.depth + 1 FROM snapshots s JOIN chain c ON s.id = c.parent_id
      )
      SELECT id FROM chain ORDER BY depth`),
    hasChild: db.prepare<[bigint], { one: bigint }>('SELECT 1 AS one FROM snapshots WHERE ? IN (parent_id, mountpoints_id) LIMIT 1'),
    insert: db.prepare<[string, string, bigint, bigint | null, bigint | null, bigint, bigint]>(
      'INSERT INTO snapshots (namespace, key, kind, parent_id, mountpoints_id, created_ns, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    insertCommitted: db.prepare<[string, string, bigint | null, bigint, bigint, number, number, string, string | null]>(
      `INSERT INTO snapshots (namespace, key, kind, parent_id, created_ns, updated_ns, size, inodes, root_hash, chain_id)
       VALUES (?, ?, 3, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    commit: db.prepare<[string, bigint, bigint, number, number, string, string | null, bigint]>(
      'UPDATE snapshots SET key = ?, kind = 3, created_ns = ?, updated_ns = ?, size = ?, inodes = ?, root_hash = ?, chain_id = ? WHERE id = ?',
    ),
    committedByLabel: db.prepare<[string, bigint | null, string, string], { key: string }>(`
      SELECT s.key FROM snapshots s JOIN labels l ON l.snapshot_id = s.id
      WHERE s.namespace = ? AND s.kind = 3 AND s.parent_id IS ? AND l.name = ? AND l.value = ?
      ORDER BY s.id LIMIT 1`),
    chainIdOf: db.prepare<[bigint], { chain_id: string | null }>('SELECT chain_id FROM snapshots WHERE id = ?'),
    imagesOf: db.prepare<[bigint], { image: string }>('SELECT image FROM layer_images WHERE snapshot_id = ? ORDER BY image'),
    insertImage: db.prepare<[bigint, string]>('INSERT OR IGNORE INTO layer_images (snapshot_id, image) VALUES (?, ?)'),
    signatureOf: db.prepare<[bigint], { root_hash: string; binding: SignedLayer['binding']; image: string; manifest: string; signer: string }>(
      'SELECT root_hash, binding, image, manifest, signer FROM layer_signatures WHERE snapshot_id = ?',
    ),
    insertSignature: db.prepare<[bigint, string, string, string, string, string]>(
      'INSERT INTO layer_signatures (snapshot_id, root_hash, binding, image, manifest, signer) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    touch: db.prepare<[bigint, bigint]>('UPDATE snapshots SET updated_ns = ? WHERE id = ?'),
    delete: db.prepare<[bigint]>('DELETE FROM snapshots WHERE id = ?'),
    clearLabels: db.prepare<[bigint]>('DELETE FROM labels WHERE snapshot_id = ?'),
    insertLabel: db.prepare<[bigint, string, string]>('INSERT INTO labels (snapshot_id, name, value) VALUES (?, ?, ?)'),
  };
}

export interface SqliteStoreOptions {
  clock: Clock;
  /**
   * Open an existing database for reading only (`integrityctl status` beside
   * a running daemon: WAL lets it read while the daemon writes). No
   * migration; a database of another schema version is refused.
   */
  readOnly?: boolean;
}

export class SqliteMetadataStore implements MetadataStore {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  private readonly stmt: ReturnType<typeof prepareStatements>;

  /** Opens (creating if needed) the database at `path`; ':memory:' for a private in-memory one. */
  constructor(path: string, options: SqliteStoreOptions) {
    this.clock = options.clock;
    this.db = new Database(path, { timeout: 5000, ...(options.readOnly ? { readonly: true, fileMustExist: true } : {}) });
    this.db.defaultSafeIntegers(true);
    if (!options.readOnly) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
    }
    this.db.pragma('foreign_keys = ON');
    migrate(this.db);
    this.stmt = prepareStatements(this.db);
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }

  createSnapshot(
    ns: string,
    kind: Exclude<Kind, 'committed'>,
    key: string,
    parent: string,
    labels: Labels,
    options: { mountpoints?: number } = {},
  ): MountableSnapshot {
    requireKey(key, ns);
    const where = describe(ns, key);
    const checked = checkLabels(labels, where);
    const mountpoints = options.mountpoints === undefined ? null : BigInt(options.mountpoints);
    return this.transaction(() => {
      const parentRow = parent === '' ? undefined : this.committedParent(ns, parent, where);
      if (this.stmt.byKey.get(ns, key)) {
        throw new AlreadyExistsError(`${where} already exists`, { hint: 'remove it first or use another key' });
      }
      if (mountpoints !== null && (kind !== 'active' || !this.stmt.committedLayer.get(mountpoints))) {
        throw new InvalidArgumentError(`${where}: mountpoints layer ${mountpoints} is not a committed layer, or the snapshot is not active`, {
          hint: 'this is a bug in the snapshotter: report it with the log',
        });
      }
      const now = this.clock();
      const id = BigInt(this.stmt.insert.run(ns, key, KIND_CODE[kind], parentRow?.id ?? null, mountpoints, now, now).lastInsertRowid);
      this.writeLabels(id, checked);
      return withMountpoints({ id: Number(id), kind, parentIds: parentRow ? this.chain(parentRow.id) : [] }, mountpoints);
    });
  }

  insertCommitted(ns: string, name: string, parent: string, layer: CommittedLayer, labels: Labels): Snapshot {
    requireKey(name, ns);
    const where = describe(ns, name);
    const checked = checkLabels(labels, where);
    return this.transaction(() => {
      const parentRow = parent === '' ? undefined : this.committedParent(ns, parent, where);
      if (this.stmt.byKey.get(ns, name)) {
        throw new AlreadyExistsError(`${where} already exists`, { hint: 'remove it first or use another name' });
      }
      const now = this.clock();
      const { size, inodes } = layer.usage;
      const id = BigInt(
        this.stmt.insertCommitted.run(ns, name, parentRow?.id ?? null, now, now, size, inodes, layer.rootHash, layer.chainId ?? null).lastInsertRowid,
      );
      this.writeLabels(id, checked);
      this.writeImages(id, layer.images);
      this.writeSignature(id, layer.signed);
      return { id: Number(id), kind: 'committed', parentIds: parentRow ? this.chain(parentRow.id) : [] };
    });
  }

  findCommitted(ns: string, parent: string, label: { name: string; value: string }): string | undefined {
    const parentId = parent === '' ? null : (this.stmt.byKey.get(ns, parent)?.id ?? -1n);
    return this.stmt.committedByLabel.get(ns, parentId, label.name, label.value)?.key;
  }

  layerOrigin(ns: string, name: string): LayerOrigin {
    const row = this.find(ns, name);
    const signed = this.signature(row.id);
    return {
      id: Number(row.id),
      chainId: this.stmt.chainIdOf.get(row.id)?.chain_id ?? undefined,
      images: this.stmt.imagesOf.all(row.id).map((r) => r.image),
      ...(signed ? { signed } : {}),
    };
  }

  layerChain(ns: string, parent: string): number[] {
    return this.chain(this.committedParent(ns, parent, 'a new snapshot').id);
  }

  getSnapshot(ns: string, key: string): MountableSnapshot {
    const row = this.find(ns, key);
    const kind = kindOf(row);
    if (kind === 'committed') {
      throw new FailedPreconditionError(`${describe(ns, key)} is committed, not active or view`, {
        hint: 'mount a committed snapshot through a View or Prepare on top of it',
      });
    }
    return withMountpoints({ id: Number(row.id), kind, parentIds: row.parent_id === null ? [] : this.chain(row.parent_id) }, row.mountpoints_id);
  }

  getInfo(ns: string, key: string): { id: number; info: SnapshotInfo; usage: Usage } {
    const row = this.find(ns, key);
    return {
      id: Number(row.id),
      info: toInfo(row, this.stmt.labels.all(row.id)),
      usage: { size: Number(row.size), inodes: Number(row.inodes) },
    };
  }

  updateInfo(ns: string, info: { name: string; labels: Labels }, fieldpaths: readonly string[]): SnapshotInfo {
    const where = describe(ns, info.name);
    return this.transaction(() => {
      const row = this.find(ns, info.name);
      let labels = labelsOf(this.stmt.labels.all(row.id));
      if (fieldpaths.length === 0) {
        labels = { ...info.labels };
      }
      for (const path of fieldpaths) {
        if (path.startsWith('labels.')) {
          const name = path.slice('labels.'.length);
          labels[name] = info.labels[name] ?? '';
        } else if (path === 'labels') {
          labels = { ...info.labels };
        } else {
          throw new InvalidArgumentError(`cannot update field ${JSON.stringify(path)} of ${where}`, {
            hint: 'only "labels" and "labels.<key>" can be updated; name, parent, kind and times are immutable',
          });
        }
      }
      const checked = checkLabels(labels, where);
      const now = this.clock();
      this.stmt.touch.run(now, row.id);
      this.stmt.clearLabels.run(row.id);
      this.writeLabels(row.id, checked);
      return toInfo({ ...row, updated_ns: now }, this.stmt.labels.all(row.id));
    });
  }

  walk(ns: string, filters: readonly string[]): SnapshotInfo[] {
    const filter = parseFilters(filters);
    const labels = new Map<bigint, LabelRow[]>();
    for (const l of this.stmt.labelsOfNamespace.all(ns)) {
      const list = labels.get(l.snapshot_id);
      if (list) list.push(l);
      else labels.set(l.snapshot_id, [l]);
    }
    return this.stmt.byNamespace
      .all(ns)
      .map((row) => toInfo(row, labels.get(row.id) ?? []))
      .filter((info) => filter.matches(snapshotFields(info)));
  }

  commitActive(ns: string, key: string, name: string, layer: CommittedLayer, labels: Labels): Snapshot {
    const checked = checkLabels(labels, describe(ns, name));
    return this.transaction(() => {
      const row = this.committable(ns, key, name);
      const now = this.clock();
      this.stmt.commit.run(name, now, now, layer.usage.size, layer.usage.inodes, layer.rootHash, layer.chainId ?? null, row.id);
      this.stmt.clearLabels.run(row.id);
      this.writeLabels(row.id, checked);
      this.writeImages(row.id, layer.images);
      this.writeSignature(row.id, layer.signed);
      return withMountpoints({ id: Number(row.id), kind: 'committed', parentIds: row.parent_id === null ? [] : this.chain(row.parent_id) }, row.mountpoints_id);
    });
  }

  checkCommit(ns: string, key: string, name: string): Snapshot {
    const row = this.committable(ns, key, name);
    return withMountpoints({ id: Number(row.id), kind: 'active', parentIds: row.parent_id === null ? [] : this.chain(row.parent_id) }, row.mountpoints_id);
  }

  remove(ns: string, key: string): Snapshot {
    return this.transaction(() => {
      const row = this.find(ns, key);
      if (this.stmt.hasChild.get(row.id)) {
        throw new FailedPreconditionError(`cannot remove ${describe(ns, key)}: other snapshots have it as their parent`, {
          hint: 'remove its children first',
        });
      }
      const parentIds = row.parent_id === null ? [] : this.chain(row.parent_id);
      this.stmt.delete.run(row.id);
      return withMountpoints({ id: Number(row.id), kind: kindOf(row), parentIds }, row.mountpoints_id);
    });
  }

  listAll(): StoredSnapshot[] {
    return this.stmt.all.all().map((row) =>
      withMountpoints(
        {
          id: Number(row.id),
          namespace: row.namespace,
          key: row.key,
          kind: kindOf(row),
          parentIds: row.parent_id === null ? [] : this.chain(row.parent_id),
        },
        row.mountpoints_id,
      ),
    );
  }

  committedLayer(id: number): LayerRecord | undefined {
    const row = this.stmt.committedLayer.get(BigInt(id));
    if (!row) return undefined;
    const signed = this.signature(row.id);
    return {
      id,
      namespace: row.namespace,
      name: row.key,
      rootHash: row.root_hash,
      images: this.stmt.imagesOf.all(row.id).map((r) => r.image),
      ...(signed ? { signed } : {}),
    };
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  private find(ns: string, key: string): SnapshotRow {
    const row = this.stmt.byKey.get(ns, key);
    if (!row) {
      throw new NotFoundError(`${describe(ns, key)} not found`, {
        hint: `list the namespace's snapshots (ctr -n ${ns} snapshots ls) and check the key`,
      });
    }
    return row;
  }

  private committedParent(ns: string, parent: string, child: string): SnapshotRow {
    const row = this.stmt.byKey.get(ns, parent);
    if (!row) {
      throw new NotFoundError(`parent ${describe(ns, parent)} of ${child} not found`, {
        hint: 'commit the parent first, or prepare without a parent',
      });
    }
    if (row.kind !== KIND_CODE.committed) {
      throw new InvalidArgumentError(`parent ${describe(ns, parent)} of ${child} is ${kindOf(row)}, not committed`, {
        hint: 'only committed snapshots can be parents: commit it first',
      });
    }
    return row;
  }

  /** commitActive's checks, in containerd's order: an existing name wins over every other problem. */
  private committable(ns: string, key: string, name: string): SnapshotRow {
    requireKey(name, ns);
    if (this.stmt.byKey.get(ns, name)) {
      throw new AlreadyExistsError(`cannot commit ${describe(ns, key)} as ${JSON.stringify(name)}: ${describe(ns, name)} already exists`, {
        hint: 'commit under another name, or remove the existing snapshot first',
      });
    }
    const row = this.find(ns, key);
    if (row.kind !== KIND_CODE.active) {
      throw new FailedPreconditionError(`cannot commit ${describe(ns, key)}: it is ${kindOf(row)}, not active`, {
        hint: 'only snapshots made by Prepare can be committed',
      });
    }
    return row;
  }

  private chain(id: bigint): number[] {
    return this.stmt.chain.all(id).map((r) => Number(r.id));
  }

  private writeLabels(id: bigint, labels: Labels): void {
    for (const [name, value] of Object.entries(labels)) this.stmt.insertLabel.run(id, name, value);
  }

  private writeImages(id: bigint, images: readonly string[] = []): void {
    for (const image of images) this.stmt.insertImage.run(id, image);
  }

  private writeSignature(id: bigint, signed: SignedLayer | undefined): void {
    if (signed) this.stmt.insertSignature.run(id, signed.rootHash, signed.binding, signed.image, signed.manifest, signed.signer);
  }

  private signature(id: bigint): SignedLayer | undefined {
    const row = this.stmt.signatureOf.get(id);
    return row && { rootHash: row.root_hash, binding: row.binding, image: row.image, manifest: row.manifest, signer: row.signer };
  }
}

/** `s` with its mountpoints layer, when it has one (the key is absent otherwise). */
function withMountpoints<T extends Snapshot>(s: T, mountpoints: bigint | null): T {
  return mountpoints === null ? s : { ...s, mountpoints: Number(mountpoints) };
}

function describe(ns: string, key: string): string {
  return `snapshot ${JSON.stringify(key)} in namespace ${JSON.stringify(ns)}`;
}

function requireKey(key: string, ns: string): void {
  if (key === '') {
    throw new InvalidArgumentError(`empty snapshot key in namespace ${JSON.stringify(ns)}`, { hint: 'name the snapshot' });
  }
}

function kindOf(row: SnapshotRow): Kind {
  const kind = KIND_OF_CODE.get(row.kind);
  if (!kind) throw new FailedPreconditionError(`snapshot ${row.id} has unknown kind ${row.kind} in the metadata database`);
  return kind;
}

function labelsOf(rows: readonly LabelRow[]): Labels {
  const labels: Labels = {};
  for (const r of rows) labels[r.name] = r.value;
  return labels;
}

function toInfo(row: SnapshotRow, labels: readonly LabelRow[]): SnapshotInfo {
  return {
    name: row.key,
    parent: row.parent ?? '',
    kind: kindOf(row),
    created: row.created_ns,
    updated: row.updated_ns,
    labels: labelsOf(labels),
  };
}
