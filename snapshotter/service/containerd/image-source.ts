/**
 * An image in containerd's content store as an ImageSource
 * (oci/image-source.ts), so `integrityctl image verify --containerd` checks
 * exactly what a node holds: the image record through the image service,
 * its manifest (for an index, the one of this machine's platform), and every
 * blob streamed through the content service, checked against its
 * descriptor's size and digest as it is read.
 */
import { createHash } from 'node:crypto';
import { IntegrityViolationError, InvalidArgumentError, NotFoundError } from '../../core/errors.js';
import type { ImageSource } from '../../oci/image-source.js';
import { INDEX_TYPES, MANIFEST_TYPES, parseIndex, parseManifest, type Descriptor } from '../../oci/types.js';
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
  const streamBlob = (descriptor: Descriptor): AsyncIterable<Uint8Array> => checkedBlob(content.read(ns, descriptor.digest), descriptor, ns);

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

/** The blob's chunks; a size beyond the descriptor's or a wrong digest is thrown into the consumer's loop. */
async function* checkedBlob(chunks: AsyncIterable<Uint8Array>, descriptor: Descriptor, ns: string): AsyncIterable<Uint8Array> {
  const hash = createHash('sha256');
  let size = 0;
  const hint = `containerd's content store holds other bytes than the image names: remove the image (ctr -n ${ns} images rm) and pull it again`;
  for await (const chunk of chunks) {
    size += chunk.length;
    if (size > descriptor.size) {
      throw new IntegrityViolationError(`blob ${descriptor.digest} in containerd's content store is longer than its descriptor's ${descriptor.size} bytes`, { hint });
    }
    hash.update(chunk);
    yield chunk;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (size !== descriptor.size || digest !== descriptor.digest) {
    throw new IntegrityViolationError(
      `blob ${descriptor.digest} in containerd's content store has ${size} bytes with digest ${digest}; its descriptor says ${descriptor.size} bytes`,
      { hint },
    );
  }
}

/** Node's process.arch as OCI names architectures. */
function ociArchitecture(arch: string): string {
  return ({ x64: 'amd64', ia32: '386', arm: 'arm', arm64: 'arm64', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[arch] ?? arch;
}
