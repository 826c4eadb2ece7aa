/**
 * What the mounts should be, from the metadata alone: every active snapshot
 * and view holds one reference on each committed layer below it. The
 * snapshotter hands this to MountManager.restore() at start-up.
 */
import { layersBelow, type Snapshot } from '../metadata/types.js';

export function layerReferences(snapshots: readonly Snapshot[]): Map<number, number> {
  const refs = new Map<number, number>();
  for (const s of snapshots) {
    if (s.kind === 'committed') continue;
    for (const layer of layersBelow(s)) refs.set(layer, (refs.get(layer) ?? 0) + 1);
  }
  return refs;
}
