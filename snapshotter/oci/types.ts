/**
 * OCI image types (image-spec v1.1) and the Docker schema 2 media types that
 * registries and skopeo still produce. Parsing checks the shape once, so the
 * rest of the code can trust a Descriptor's digest and size.
 */
import { InvalidArgumentError } from '../core/errors.js';
import { parseDigest } from './digest.js';

export const MediaType = {
  imageIndex: 'application/vnd.oci.image.index.v1+json',
  imageManifest: 'application/vnd.oci.image.manifest.v1+json',
  imageConfig: 'application/vnd.oci.image.config.v1+json',
  layerTar: 'application/vnd.oci.image.layer.v1.tar',
  layerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  layerTarZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerTarGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Layer media types whose blob is a tar stream the layer pipeline reads (it detects the compression itself). */
export const CONVERTIBLE_LAYER_TYPES: ReadonlySet<string> = new Set([
  MediaType.layerTar,
  MediaType.layerTarGzip,
  MediaType.layerTarZstd,
  MediaType.dockerLayerTarGzip,
]);

export const MANIFEST_TYPES: ReadonlySet<string> = new Set([MediaType.imageManifest, MediaType.dockerManifest]);
export const INDEX_TYPES: ReadonlySet<string> = new Set([MediaType.imageIndex, MediaType.dockerManifestList]);

export type Annotations = Record<string, string>;

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  [field: string]: unknown;
}

export interface Descriptor {
  mediaType: string;
  /** `sha256:<64 lowercase hex>`; other algorithms are refused when parsing. */
  digest: string;
  size: number;
  annotations?: Annotations;
  platform?: Platform;
  urls?: string[];
  /** Fields we do not interpret are kept, so a rewritten manifest loses nothing. */
  [field: string]: unknown;
}

export interface ImageManifest {
  schemaVersion: number;
  /** Optional in OCI manifests; the signed message then holds an empty string for it. */
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Annotations;
  [field: string]: unknown;
}

export interface ImageIndex {
  schemaVersion: number;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Annotations;
  [field: string]: unknown;
}

/** Parses and checks a manifest blob; `where` names it in errors (`manifest sha256:… of oci:/x`). */
export function parseManifest(bytes: Uint8Array, where: string): ImageManifest {
  const doc = parseJsonObject(bytes, where);
  if (doc.mediaType !== undefined && !MANIFEST_TYPES.has(doc.mediaType as string)) {
    throw new InvalidArgumentError(`${where}: media type ${JSON.stringify(doc.mediaType)} is not an image manifest`, {
      hint: 'name a single-platform image manifest, not an index or an artifact',
    });
  }
  checkSchemaVersion(doc, where);
  if (!Array.isArray(doc.layers)) throw shapeError(where, 'has no "layers" array');
  checkDescriptor(doc.config, `${where}: config`);
  doc.layers.forEach((layer: unknown, i: number) => checkDescriptor(layer, `${where}: layer ${i + 1}`));
  checkAnnotations(doc.annotations, where);
  return doc as unknown as ImageManifest;
}

export function parseIndex(bytes: Uint8Array, where: string): ImageIndex {
  const doc = parseJsonObject(bytes, where);
  checkSchemaVersion(doc, where);
  if (!Array.isArray(doc.manifests)) throw shapeError(where, 'has no "manifests" array');
  doc.manifests.forEach((m: unknown, i: number) => checkDescriptor(m, `${where}: manifests[${i}]`));
  checkAnnotations(doc.annotations, where);
  return doc as unknown as ImageIndex;
}

/** Serialized as registries and Go's encoding/json do it: compact, annotation keys sorted. */
export function serializeJson(value: ImageManifest | ImageIndex): Buffer {
  return Buffer.from(JSON.stringify(value, sortAnnotations));
}

function sortAnnotations(this: unknown, key: string, value: unknown): unknown {
  if (key !== 'annotations' || value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Annotations).sort(([a], [b]) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  return Object.fromEntries(entries);
}

function parseJsonObject(bytes: Uint8Array, where: string): Record<string, any> {
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError(`${where}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw shapeError(where, 'is not a JSON object');
  return doc as Record<string, any>;
}

function checkSchemaVersion(doc: Record<string, unknown>, where: string): void {
  if (doc.schemaVersion !== 2) throw shapeError(where, `has schemaVersion ${JSON.stringify(doc.schemaVersion)}, expected 2`);
}

function checkDescriptor(value: unknown, where: string): void {
  const d = value as Record<string, unknown> | null;
  if (d === null || typeof d !== 'object') throw shapeError(where, 'is not a descriptor object');
  if (typeof d.mediaType !== 'string') throw shapeError(where, 'has no mediaType');
  if (typeof d.digest !== 'string') throw shapeError(where, 'has no digest');
  parseDigest(d.digest, where);
  if (typeof d.size !== 'number' || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw shapeError(where, `has size ${JSON.stringify(d.size)}, expected a non-negative integer`);
  }
  checkAnnotations(d.annotations, where);
}

function checkAnnotations(value: unknown, where: string): void {
  if (value === undefined) return;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw shapeError(where, 'has annotations that are not an object');
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'string') throw shapeError(where, `has annotation ${JSON.stringify(k)} that is not a string`);
  }
}

function shapeError(where: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${where} ${what}`, { hint: 'the document is not a valid OCI image manifest or index' });
}
