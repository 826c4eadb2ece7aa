/**
 * Where an image's manifest and blobs are read from: an OCI layout directory
 * here, containerd's content store elsewhere. Sealing and verifying depend on
 * this seam only.
 */
import { formatLayoutReference, OciLayout, parseLayoutReference, type LayoutReference } from './layout.js';
import { parseManifest, type Descriptor, type ImageManifest } from './types.js';

export interface ImageSource {
  /** Names the image in messages: `oci:/dir:tag`. */
  readonly name: string;
  /** The manifest's descriptor, verified bytes and parsed form. */
  readonly descriptor: Descriptor;
  readonly manifestBytes: Buffer;
  readonly manifest: ImageManifest;
  /** A blob's bytes, checked against the descriptor; for small blobs. */
  readBlob(descriptor: Descriptor): Promise<Buffer>;
  /** A blob as a stream; a size or digest mismatch is thrown into the consuming loop. */
  streamBlob(descriptor: Descriptor): AsyncIterable<Uint8Array>;
}

export interface LayoutImage extends ImageSource {
  readonly layout: OciLayout;
  readonly reference: LayoutReference;
}

/** Opens `<dir>[:tag]` and reads its manifest. */
export async function openLayoutImage(reference: string): Promise<LayoutImage> {
  const ref = parseLayoutReference(reference);
  const layout = await OciLayout.open(ref.dir);
  const descriptor = await layout.resolve(ref.tag);
  const name = formatLayoutReference(ref);
  const manifestBytes = await layout.readBlob(descriptor);
  const manifest = parseManifest(manifestBytes, `manifest ${descriptor.digest} of ${name}`);
  return {
    name,
    descriptor,
    manifestBytes,
    manifest,
    layout,
    reference: ref,
    readBlob: (d) => layout.readBlob(d),
    streamBlob: (d) => layout.streamBlob(d),
  };
}
