/**
 * OCI image layout directories (image-spec layout.md): `oci-layout`,
 * `index.json`, `blobs/sha256/<hex>`. References are `<dir>[:tag]`, tags
 * resolved through the index's `org.opencontainers.image.ref.name`, as skopeo's
 * `oci:` transport does.
 *
 * Blobs are written under a temporary name, fsynced and renamed, and
 * index.json is replaced last: a crash leaves the old index naming complete
 * blobs. Blobs are verified against their digest and size whenever read.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { AtomicFile } from '../core/atomic-file.js';
import { IntegrityViolationError, InvalidArgumentError, isNotFound, NotFoundError } from '../core/errors.js';
import { REF_NAME_ANNOTATION } from './annotations.js';
import { parseDigest, sha256Digest } from './digest.js';
import { INDEX_TYPES, MediaType, parseIndex, serializeJson, type Descriptor, type ImageIndex } from './types.js';

const LAYOUT_FILE = 'oci-layout';
const INDEX_FILE = 'index.json';
const LAYOUT_VERSION = '1.0.0';

export interface LayoutReference {
  dir: string;
  tag: string | undefined;
}

/**
 * `<dir>[:tag]`: the part after the last `:` is a tag when it holds no `/`
 * (so `/tmp/a:b/c` is a directory). An `oci:` prefix, as skopeo spells it, is accepted.
 */
export function parseLayoutReference(reference: string): LayoutReference {
  const text = reference.startsWith('oci:') ? reference.slice(4) : reference;
  const colon = text.lastIndexOf(':');
  if (colon > 0 && !text.slice(colon + 1).includes('/')) {
    const tag = text.slice(colon + 1);
    if (tag === '') throw new InvalidArgumentError(`image reference ${JSON.stringify(reference)} has an empty tag`, { hint: 'write <dir>:<tag> or just <dir>' });
    return { dir: text.slice(0, colon), tag };
  }
  if (text === '') throw new InvalidArgumentError('empty image reference', { hint: 'write <oci-layout-dir>[:tag]' });
  return { dir: text, tag: undefined };
}

export function formatLayoutReference(ref: LayoutReference): string {
  return `oci:${ref.dir}${ref.tag === undefined ? '' : `:${ref.tag}`}`;
}

export class OciLayout {
  readonly dir: string;

  private constructor(dir: string) {
    this.dir = resolve(dir);
  }

  /** An existing layout; fails with the fix when `dir` is not one. */
  static async open(dir: string): Promise<OciLayout> {
    const layout = new OciLayout(dir);
    let marker: { imageLayoutVersion?: unknown };
    try {
      marker = JSON.parse(await readFile(join(layout.dir, LAYOUT_FILE), 'utf8')) as typeof marker;
    } catch (err) {
      if (isNotFound(err)) {
        throw new NotFoundError(`${dir} is not an OCI image layout (no ${LAYOUT_FILE} file)`, {
          hint: 'create one with `skopeo copy <source> oci:<dir>:<tag>`',
        });
      }
      throw new InvalidArgumentError(`${dir}/${LAYOUT_FILE} is not valid JSON`, { cause: err });
    }
    if (marker.imageLayoutVersion !== LAYOUT_VERSION) {
      throw new InvalidArgumentError(`${dir}: unsupported imageLayoutVersion ${JSON.stringify(marker.imageLayoutVersion)}`, {
        hint: `only OCI image layout ${LAYOUT_VERSION} is supported`,
      });
    }
    return layout;
  }

  /**
   * Whether `dir` can take images: true for an existing layout, false for a
   * missing or empty directory (openOrCreate will create one); anything else
   * throws. Lets callers refuse a bad target before doing slow work.
   */
  static async probeTarget(dir: string): Promise<boolean> {
    const path = resolve(dir);
    try {
      await stat(join(path, LAYOUT_FILE));
      return true;
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    const entries = await readdir(path).catch((err: unknown) => {
      if (isNotFound(err)) return [];
      throw err;
    });
    if (entries.length > 0) {
      throw new InvalidArgumentError(`${dir} exists and is not an OCI image layout`, { hint: 'name a new or empty directory, or an existing OCI layout' });
    }
    return false;
  }

  /** Opens `dir` as a layout, creating an empty one if it does not exist or is an empty directory. */
  static async openOrCreate(dir: string): Promise<OciLayout> {
    if (await OciLayout.probeTarget(dir)) return OciLayout.open(dir);
    const layout = new OciLayout(dir);
    await mkdir(join(layout.dir, 'blobs', 'sha256'), { recursive: true });
    // Index first, marker last: a directory with the marker is a complete layout.
    await layout.writeIndex({ schemaVersion: 2, mediaType: MediaType.imageIndex, manifests: [] });
    await writeAtomic(join(layout.dir, LAYOUT_FILE), Buffer.from(JSON.stringify({ imageLayoutVersion: LAYOUT_VERSION })));
    return layout;
  }

  blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', parseDigest(digest, `blob in ${this.dir}`));
  }

  async readIndex(): Promise<ImageIndex> {
    const path = join(this.dir, INDEX_FILE);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`${this.dir} has no ${INDEX_FILE}`, { hint: 'the layout is incomplete; copy the image into it again' });
      throw err;
    }
    return parseIndex(bytes, path);
  }

  async writeIndex(index: ImageIndex): Promise<void> {
    await writeAtomic(join(this.dir, INDEX_FILE), serializeJson(index));
  }

  /**
   * The index entry for `tag`, or the only entry when no tag is given.
   * Nested indexes (multi-platform images) are refused: sealing is per manifest.
   */
  async resolve(tag: string | undefined): Promise<Descriptor> {
    const index = await this.readIndex();
    const tags = index.manifests.map((m) => m.annotations?.[REF_NAME_ANNOTATION]).filter((n): n is string => n !== undefined);
    let found: Descriptor | undefined;
    if (tag === undefined) {
      if (index.manifests.length !== 1) {
        throw new InvalidArgumentError(`${this.dir} holds ${index.manifests.length} images; name one with <dir>:<tag>`, {
          hint: tags.length ? `tags here: ${tags.join(', ')}` : 'the images here have no tags; copy the one you want into its own layout',
        });
      }
      found = index.manifests[0];
    } else {
      const matches = index.manifests.filter((m) => m.annotations?.[REF_NAME_ANNOTATION] === tag);
      if (matches.length > 1) throw new InvalidArgumentError(`${this.dir}: tag ${JSON.stringify(tag)} names ${matches.length} images`, { hint: 'the layout is ambiguous; copy the image into a new layout' });
      found = matches[0];
      if (!found) {
        throw new NotFoundError(`${this.dir} has no image tagged ${JSON.stringify(tag)}`, {
          hint: tags.length ? `tags here: ${tags.join(', ')}` : 'the images here have no tags; omit :tag',
        });
      }
    }
    if (INDEX_TYPES.has(found!.mediaType)) {
      throw new InvalidArgumentError(`${formatLayoutReference({ dir: this.dir, tag })} is a multi-platform index, not an image manifest`, {
        hint: 'copy one platform into a layout first: `skopeo copy --override-arch <arch> oci:<dir>:<tag> oci:<new-dir>:<tag>`',
      });
    }
    return found!;
  }

  /** The whole blob, checked against `descriptor`'s size and digest. For small blobs (manifests, configs). */
  async readBlob(descriptor: Descriptor): Promise<Buffer> {
    const path = this.blobPath(descriptor.digest);
    let bytes: Buffer;
    try {
      bytes = await readFile(path);
    } catch (err) {
      if (isNotFound(err)) throw missingBlob(path, descriptor);
      throw err;
    }
    checkBlob(path, descriptor, bytes.length, sha256Digest(bytes));
    return bytes;
  }

  /**
   * The blob as a stream, checked as it is read: the size as soon as it is
   * exceeded, the digest at the end. The error is thrown into the consumer's
   * loop, so a conversion fed from here never completes on tampered content.
   */
  async *streamBlob(descriptor: Descriptor): AsyncIterable<Uint8Array> {
    const path = this.blobPath(descriptor.digest);
    const hash = createHash('sha256');
    let size = 0;
    try {
      for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > descriptor.size) checkBlob(path, descriptor, size, undefined);
        hash.update(chunk);
        yield chunk;
      }
    } catch (err) {
      if (isNotFound(err)) throw missingBlob(path, descriptor);
      throw err;
    }
    checkBlob(path, descriptor, size, `sha256:${hash.digest('hex')}`);
  }

  async hasBlob(descriptor: Descriptor): Promise<boolean> {
    try {
      return (await stat(this.blobPath(descriptor.digest))).size === descriptor.size;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Stores `bytes`; returns a descriptor of `mediaType` for it. */
  async writeBlob(bytes: Uint8Array, mediaType: string): Promise<Descriptor> {
    const descriptor: Descriptor = { mediaType, digest: sha256Digest(bytes), size: bytes.length };
    if (!(await this.hasBlob(descriptor))) await writeAtomic(this.blobPath(descriptor.digest), bytes);
    return descriptor;
  }

  /** Copies a blob from another layout, verifying it on the way; a blob already here is kept. */
  async copyBlobFrom(source: OciLayout, descriptor: Descriptor): Promise<void> {
    if (await this.hasBlob(descriptor)) return;
    const file = AtomicFile.create(this.blobPath(descriptor.digest));
    try {
      let position = 0;
      for await (const chunk of source.streamBlob(descriptor)) {
        file.write(chunk, position);
        position += chunk.length;
      }
      file.commit();
    } catch (err) {
      file.abort();
      throw err;
    }
  }

  /**
   * Adds `descriptor` to the index under `tag` (replacing whatever had that
   * tag), or untagged. Call after every blob it needs is written.
   */
  async addManifest(descriptor: Descriptor, tag: string | undefined): Promise<void> {
    const index = await this.readIndex();
    const entry: Descriptor = { ...descriptor };
    if (tag !== undefined) entry.annotations = { ...descriptor.annotations, [REF_NAME_ANNOTATION]: tag };
    index.manifests = index.manifests.filter((m) => tag === undefined ? m.digest !== descriptor.digest : m.annotations?.[REF_NAME_ANNOTATION] !== tag);
    index.manifests.push(entry);
    await this.writeIndex(index);
  }
}

async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const file = AtomicFile.create(path);
  try {
    file.write(bytes);
    file.commit();
  } catch (err) {
    file.abort();
    throw err;
  }
}

function checkBlob(path: string, descriptor: Descriptor, size: number, digest: string | undefined): void {
  if (size !== descriptor.size && (digest !== undefined || size > descriptor.size)) {
    throw new IntegrityViolationError(`blob ${descriptor.digest} (${path}) has ${size} bytes, its descriptor says ${descriptor.size}`, {
      hint: 'the blob was altered or truncated; copy the image into the layout again',
    });
  }
  if (digest !== undefined && digest !== descriptor.digest) {
    throw new IntegrityViolationError(`blob ${descriptor.digest} (${path}) has digest ${digest}`, {
      hint: 'the blob was altered after it was written; copy the image into the layout again',
    });
  }
}

function missingBlob(path: string, descriptor: Descriptor): NotFoundError {
  return new NotFoundError(`blob ${descriptor.digest} is missing (${path})`, { hint: 'the layout is incomplete; copy the image into it again' });
}
