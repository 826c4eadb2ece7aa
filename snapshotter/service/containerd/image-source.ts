/**
 * An image in containerd's content store as an ImageSource
 * (oci/image-source.ts), so `integrityctl image verify --containerd` checks
 * exactly what a node holds: the image record through the image service,
 * its manifest (for an index, the one of this machine's platform), and every
 * blob streamed through the content service, checked against its
 * descriptor's size and digest as it is read. A layer blob containerd does
 * not hold — the snapshotter fetched it from the registry at pull and kept
 * only the layer (docs/snapshotter.md, "Fetching layers") — is read from the
 * registry the same way, when a registry client is given.
 */
import { createHash } from 'node:crypto';
import { IntegrityViolationError, InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import type { ImageSource } from '../../oci/image-source.js';
import { INDEX_TYPES, MANIFEST_TYPES, parseIndex, parseManifest, type Descriptor } from '../../oci/types.js';
import type { RegistryClient } from '../registry/client.js';
import type { ContentClient } from './content.js';
import type { ImageClient } from './images.js';

export interface ContainerdImageOptions {
  content: ContentClient;
  images: ImageClient;
  /** containerd namespace (CRI's is `k8s.io`). */
  namespace: string;
  /** The image name as containerd keeps it: `registry.example/app:1.0`. */
  name: string;
  /** For an index: the platform whose manifest to take (default: this machine's, linux). */
  platform?: { os: string; architecture: string };
  /** Where blobs containerd does not hold are read from; without it, such a blob is an error. */
  registry?: Pick<RegistryClient, 'openBlob'>;
}

export async function openContainerdImage(options: ContainerdImageOptions): Promise<ImageSource> {
  const { content, namespace: ns, name: reference } = options;
  const record = (await options.images.list(ns)).find((r) => r.name === reference);
  if (!record) {
    throw new NotFoundError(`containerd has no image ${JSON.stringify(reference)} in namespace ${JSON.stringify(ns)}`, {
      hint: `name it as \`ctr -n ${ns} images ls\` lists it (full name with registry and tag), or pass --namespace`,
    });
  }
  const name = `containerd:${ns}/${reference}`;
  const readBlob = async (descriptor: Descriptor): Promise<Buffer> => {
    const chunks: Uint8Array[] = [];
    for await (const chunk of streamBlob(descriptor)) chunks.push(chunk);
    return Buffer.concat(chunks);
  };
  const { registry } = options;
  const streamBlob = (descriptor: Descriptor): AsyncIterable<Uint8Array> =>
    registry ? fromStoreOrRegistry(descriptor, registry) : checkedBlob(content.read(ns, descriptor.digest), descriptor, STORE_HINT(ns));
  async function* fromStoreOrRegistry(descriptor: Descriptor, client: Pick<RegistryClient, 'openBlob'>): AsyncIterable<Uint8Array> {
    if (await content.info(ns, descriptor.digest)) {
      yield* checkedBlob(content.read(ns, descriptor.digest), descriptor, STORE_HINT(ns));
      return;
    }
    yield* checkedBlob(await client.openBlob(reference, descriptor.digest), descriptor, {
      where: `the registry of ${reference}`,
      hint: 'the registry serves other bytes than the image names: check its hosts.toml mirrors',
    });
  }

  let descriptor: Descriptor = { ...record.target };
  if (INDEX_TYPES.has(descriptor.mediaType)) {
    const index = parseIndex(await readBlob(descriptor), `index ${descriptor.digest} of ${name}`);
    const platform = options.platform ?? { os: 'linux', architecture: ociArchitecture(process.arch) };
    const matching = index.manifests.filter((m) => m.platform?.os === platform.os && m.platform.architecture === platform.architecture);
    const present = [];
    for (const m of matching) if (await content.info(ns, m.digest)) present.push(m);
    if (present.length !== 1) {
      throw new InvalidArgumentError(
        `${name} is an index with ${present.length} ${platform.os}/${platform.architecture} manifest(s) in the content store, not one`,
        { hint: 'pull the image for this platform first (ctr images pull --platform), or name a single-platform image' },
      );
    }
    descriptor = present[0]!;
  }
  if (!MANIFEST_TYPES.has(descriptor.mediaType)) {
    throw new InvalidArgumentError(`${name} has media type ${descriptor.mediaType}, not an image manifest or index`, {
      hint: 'name an image, not an artifact',
    });
  }
  const manifestBytes = await readBlob(descriptor);
  const manifest = parseManifest(manifestBytes, `manifest ${descriptor.digest} of ${name}`);
  return { name, descriptor, manifestBytes, manifest, readBlob, streamBlob };
}

const STORE_HINT = (ns: string) => ({
  where: "containerd's content store",
  hint: `containerd's content store holds other bytes than the image names: remove the image (ctr -n ${ns} images rm) and pull it again`,
});

/** The blob's chunks; a size beyond the descriptor's or a wrong digest is thrown into the consumer's loop. */
async function* checkedBlob(chunks: AsyncIterable<Uint8Array>, descriptor: Descriptor, from: { where: string; hint: string }): AsyncIterable<Uint8Array> {
  const hash = createHash('sha256');
  let size = 0;
  const { where, hint } = from;
  for await (const chunk of chunks) {
    size += chunk.length;
    if (size > descriptor.size) {
      throw new IntegrityViolationError(`blob ${descriptor.digest} in ${where} is longer than its descriptor's ${descriptor.size} bytes`, { hint });
    }
    hash.update(chunk);
    yield chunk;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (size !== descriptor.size || digest !== descriptor.digest) {
    throw new IntegrityViolationError(
      `blob ${descriptor.digest} in ${where} has ${size} bytes with digest ${digest}; its descriptor says ${descriptor.size} bytes`,
      { hint },
    );
  }
}

/** Node's process.arch as OCI names architectures. */
function ociArchitecture(arch: string): string {
  return ({ x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[arch] ?? arch;
}
