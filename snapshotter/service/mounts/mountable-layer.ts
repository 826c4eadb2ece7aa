/**
 * A committed layer as the MountManager hands it to the mounter: its files
 * from the layout, its expected root hash and names from the metadata. The
 * expected root hash of a signed image's layer is the value its signature
 * vouches for (recorded with it at commit, checked equal to the converted
 * layer's then); of any other layer, the one recorded when it was converted.
 */
import { NotFoundError } from '../../core/errors.js';
import type { RootLayout } from '../layout.js';
import type { MetadataStore } from '../metadata/store.js';
import type { LayerRecord } from '../metadata/types.js';
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
    rootHash: expectedRootHash(record),
    namespace: record.namespace,
    name: record.name,
  };
}

/** How messages name a layer: by its snapshot, as containerd knows it. */
export function describeLayer(layer: Pick<MountableLayer, 'namespace' | 'name'>): string {
  return `layer ${JSON.stringify(layer.name)} in namespace ${JSON.stringify(layer.namespace)}`;
}

/** The root hash a layer's dm-verity device must check: the signed value when there is one. */
export function expectedRootHash(record: Pick<LayerRecord, 'rootHash' | 'signed'>): string {
  return record.signed?.rootHash ?? record.rootHash;
}
