/**
 * OCI / AUFS whiteout names in layer tars
 * (https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts):
 * `.wh.X` deletes X from the lower layers, `.wh..wh..opq` in a directory
 * hides everything the lower layers have in it.
 */
import type { ByteString } from './entry.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';

export type WhiteoutName =
  | { kind: 'plain' }
  | { kind: 'opaque' }
  | { kind: 'whiteout'; target: ByteString };

/** Classifies the last component of a path. */
export function classifyName(name: ByteString): WhiteoutName {
  if (name === OPAQUE_MARKER) return { kind: 'opaque' };
  if (name.startsWith(WHITEOUT_PREFIX)) return { kind: 'whiteout', target: name.slice(WHITEOUT_PREFIX.length) };
  return { kind: 'plain' };
}
