/**
 * A committed layer as the MountManager hands it to the mounter: its files
 * from the layout, its expected root hash and names from the metadata. The
 * expected root hash is the one recorded when the layer was converted; this
 * is the one place to take it from elsewhere (a signed value) instead.
 */
import { NotFoundError } from '../../core/errors.js';
import type { RootLayout } from '../layout.js';
import type { MetadataStore } from '../metadata/store.js';
import type { MountableLayer } from './manager.js';

export function mountableLayer(layout: RootLayout, store: Pick<MetadataStore, 'committedLayer'>, id: number): MountableLayer {
  const record = store.committedLayer(id);
  if (!record) {
    throw new NotFoundError(`layer ${id} is not a committed snapshot in the metadata`, {
      hint: 'the snapshot was removed meanwhile; prepare the container again',
    });
  }
  return {
    id,
    image: layout.image(id),
    hashTree: layout.hashTree(id),
    rootHash: record.rootHash,
    namespace: record.namespace,
    name: record.name,
  };
}

/** How messages name a layer: by its snapshot, as containerd knows it. */
export function describeLayer(layer: Pick<MountableLayer, 'namespace' | 'name'>): string {
  return `layer ${JSON.stringify(layer.name)} in namespace ${JSON.stringify(layer.namespace)}`;
}
