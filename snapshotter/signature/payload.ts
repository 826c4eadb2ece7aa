/**
 * The message Delivery Kit signs for an image manifest. It covers the fields
 * that identify content (config and layer descriptors) and the manifest's
 * annotations, so that annotations added before signing — the flattened
 * image's root hash, our layer root-hash list — are bound to the signature.
 * Layer descriptors' annotations are not covered.
 *
 * Fact source: deckhouse/delivery-kit-sdk pkg/signature/image/manifest.go,
 * getManifestPayloadHash. Missing fields take Go's zero values there ("" and
 * 0), so they do here too.
 */
import { createHash } from 'node:crypto';
import { BUNDLE_ANNOTATIONS } from '../oci/annotations.js';
import type { ImageManifest } from '../oci/types.js';

/**
 * The concatenation, without separators, of: schemaVersion (decimal),
 * mediaType, config digest, config mediaType, config size; per layer digest,
 * mediaType, size; then every manifest annotation except the bundle keys,
 * sorted by key bytewise (UTF-8), key then value.
 */
export function manifestPayload(manifest: ImageManifest): string {
  const parts: string[] = [
    decimal(manifest.schemaVersion),
    manifest.mediaType ?? '',
    manifest.config.digest,
    manifest.config.mediaType,
    decimal(manifest.config.size),
  ];
  for (const layer of manifest.layers) parts.push(layer.digest, layer.mediaType, decimal(layer.size));
  const annotations = Object.entries(manifest.annotations ?? {})
    .filter(([key]) => !BUNDLE_ANNOTATIONS.includes(key))
    // Go's slices.Sort compares UTF-8 bytes; JavaScript's default sort compares UTF-16 units.
    .sort(([a], [b]) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
  for (const [key, value] of annotations) parts.push(key, value);
  return parts.join('');
}

/** The signed message: 64 lowercase hex digits, the SHA-256 of manifestPayload(). */
export function signedMessage(manifest: ImageManifest): string {
  return createHash('sha256').update(manifestPayload(manifest), 'utf8').digest('hex');
}

const MESSAGE = /^[0-9a-f]{64}$/;

export function isSignedMessage(value: string): boolean {
  return MESSAGE.test(value);
}

function decimal(n: number | undefined): string {
  return String(n ?? 0);
}
