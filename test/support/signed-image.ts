/**
 * Signed images in OCI layouts for end-to-end tests: signer PEM files for
 * `integrityctl image seal`, and `resign()`, which edits a sealed manifest
 * the way an attacker or a broken pipeline would — change annotations, then
 * sign with some key, or paste a bundle from elsewhere — and tags the result.
 * Layer blobs and the config are never touched.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_ANNOTATIONS } from '../../snapshotter/oci/annotations.js';
import { OciLayout } from '../../snapshotter/oci/layout.js';
import { MediaType, parseManifest, serializeJson, type Annotations, type ImageManifest } from '../../snapshotter/oci/types.js';
import { bundleAnnotations, createSigner, signMessage, type Signer } from '../../snapshotter/signature/bundle.js';
import { signedMessage } from '../../snapshotter/signature/payload.js';
import type { Issued } from './pki.js';

export interface SignerFiles {
  key: string;
  cert: string;
  /** The intermediates, then the root, as Delivery Kit's --cert-chain holds them. */
  chain: string;
  signer: Signer;
}

/** PEM files of `leaf` and its `chain` (intermediates first) in `dir`, named by `name`, and the signer they make. */
export function writeSignerFiles(dir: string, name: string, leaf: Issued, chain: readonly Issued[]): SignerFiles {
  const files = { key: join(dir, `${name}.key`), cert: join(dir, `${name}.crt`), chain: join(dir, `${name}-chain.pem`) };
  writeFileSync(files.key, leaf.keyPem, { mode: 0o600 });
  writeFileSync(files.cert, leaf.certPem);
  writeFileSync(files.chain, chain.map((c) => c.certPem).join(''));
  return { ...files, signer: createSigner({ key: leaf.keyPem, cert: leaf.certPem, chain: chain.map((c) => c.certPem).join('') }) };
}

/** The manifest tagged `tag` in the layout `dir`. */
export async function readManifest(dir: string, tag: string): Promise<ImageManifest> {
  const layout = await OciLayout.open(dir);
  const descriptor = await layout.resolve(tag);
  return parseManifest(await layout.readBlob(descriptor), `${dir}:${tag}`);
}

/**
 * Replaces the image tagged `tag` in `dir` by one whose manifest annotations
 * are `edit(annotations without the bundle)`, signed by `signer` — or, with
 * no signer, exactly what `edit` returns (a pasted bundle). Returns it.
 */
export async function resign(dir: string, tag: string, edit: (annotations: Annotations) => Annotations, signer?: Signer): Promise<ImageManifest> {
  const layout = await OciLayout.open(dir);
  const manifest = await readManifest(dir, tag);
  const kept = Object.fromEntries(Object.entries(manifest.annotations ?? {}).filter(([key]) => !BUNDLE_ANNOTATIONS.includes(key)));
  const edited: ImageManifest = { ...manifest, annotations: edit(kept) };
  if (signer) edited.annotations = { ...edited.annotations, ...bundleAnnotations(signMessage(signer, signedMessage(edited))) };
  const descriptor = await layout.writeBlob(serializeJson(edited), edited.mediaType ?? MediaType.imageManifest);
  await layout.addManifest(descriptor, tag);
  return edited;
}

/** The three bundle annotations of `manifest`. */
export function bundleOf(manifest: ImageManifest): Annotations {
  return Object.fromEntries(Object.entries(manifest.annotations ?? {}).filter(([key]) => BUNDLE_ANNOTATIONS.includes(key)));
}
