import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteMetadataStore } from '../../../../snapshotter/service/metadata/sqlite.js';
import { metadataStoreSuite } from '../../../support/metadata-store-suite.js';

metadataStoreSuite('sqlite file', ({ clock }) => {
  const dir = mkdtempSync(join(tmpdir(), 'metadata-'));
  const store = new SqliteMetadataStore(join(dir, 'metadata.db'), { clock });
  return {
    store,
    dispose: () => {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
