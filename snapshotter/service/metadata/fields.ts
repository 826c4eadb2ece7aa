/**
 * The fields containerd's filters can name on a snapshot (storage/bolt.go
 * `adaptSnapshot`): kind, name, parent and labels.<key>. A snapshot without
 * labels has no label fields at all; `parent` is present (maybe empty) always.
 */
import type { FieldLookup } from '../../core/filters.js';
import type { SnapshotInfo } from './types.js';

export function snapshotFields(info: SnapshotInfo): FieldLookup {
  return (fieldpath) => {
    switch (fieldpath[0]) {
      case 'kind':
        return info.kind;
      case 'name':
        return info.name;
      case 'parent':
        return info.parent;
      case 'labels': {
        const key = fieldpath.slice(1).join('.');
        return Object.hasOwn(info.labels, key) ? info.labels[key] : undefined;
      }
      default:
        return undefined;
    }
  };
}
