/**
 * Snapshot labels as containerd stores them: at most 4096 bytes of key plus
 * value (containerd `labels.Validate`), and an empty value means "no label".
 */
import { InvalidArgumentError } from '../../core/errors.js';
import type { Labels } from './types.js';

export const MAX_LABEL_BYTES = 4096;

/** Labels with empty values dropped; throws if one is too large. `where` names the snapshot. */
export function checkLabels(labels: Labels, where: string): Labels {
  const out: Labels = {};
  for (const [key, value] of Object.entries(labels)) {
    if (value === '') continue;
    const bytes = Buffer.byteLength(key) + Buffer.byteLength(value);
    if (bytes > MAX_LABEL_BYTES) {
      throw new InvalidArgumentError(
        `label ${JSON.stringify(truncate(key))} of ${where} has ${bytes} bytes of key and value, more than the maximum of ${MAX_LABEL_BYTES}`,
        { hint: 'shorten the label value or keep the data elsewhere and put a reference in the label' },
      );
    }
    out[key] = value;
  }
  return out;
}

function truncate(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}
