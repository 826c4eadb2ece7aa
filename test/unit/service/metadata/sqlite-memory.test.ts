import { SqliteMetadataStore } from '../../../../snapshotter/service/metadata/sqlite.js';
import { metadataStoreSuite } from '../../../support/metadata-store-suite.js';

metadataStoreSuite('sqlite in memory', ({ clock }) => {
  const store = new SqliteMetadataStore(':memory:', { clock });
  return { store, dispose: () => store.close() };
});
