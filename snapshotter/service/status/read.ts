/**
 * The layer status as `integrityctl status` sees it: read beside the daemon,
 * not through it — the metadata database opened read-only (WAL lets it read
 * while the daemon writes), the mount table and the dm ioctls. So it works
 * when the daemon is stopped or hung, which is when it is needed most, and it
 * judges with the same code as the daemon's periodic check.
 */
import { existsSync } from 'node:fs';
import { wallClock } from '../../core/clock.js';
import type { SnapshotterConfig } from '../../core/config.js';
import { RootLayout } from '../layout.js';
import { SqliteMetadataStore } from '../metadata/sqlite.js';
import { probeVerity } from '../mounts/verity-device.js';
import { snapshotterScope } from '../mounts/verity-identity.js';
import { evaluateStatus, type StatusReport } from './evaluate.js';
import { observeNode } from './observe.js';

export async function readStatus(config: SnapshotterConfig): Promise<StatusReport> {
  const layout = new RootLayout(config.root);
  // No database: no snapshotter ran with this root; mounts and devices are still reported.
  const store = existsSync(layout.database) ? new SqliteMetadataStore(layout.database, { clock: wallClock(), readOnly: true }) : undefined;
  try {
    const scope = snapshotterScope(config.root);
    const observation = await observeNode({
      layout,
      mountsDir: config.mounts.dir,
      scope,
      records: store ?? { committedLayer: () => undefined },
      verity: await probeVerity(),
    });
    return evaluateStatus(observation, config.verity, scope);
  } finally {
    store?.close();
  }
}
