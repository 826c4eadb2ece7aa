/**
 * The registry and repository of an image reference as CRI writes it into
 * the `cri.image-ref` label: normalized by containerd's reference parser
 * (`docker.io/library/busybox:1.36`, `registry.example:5000/app@sha256:…`).
 * Short Docker Hub names are accepted too, the way that parser expands them.
 */

/** Docker Hub's name in references; its API is served from another host. */
export const DOCKER_HUB = 'docker.io';

export interface RepositoryLocation {
  /** Registry host with port, as in the reference (`docker.io`, `127.0.0.1:5000`). */
  host: string;
  /** Repository path inside it (`library/busybox`). */
  repository: string;
}

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;

/** Where `reference`'s blobs are; undefined for something that is not an image reference. */
export function repositoryLocation(reference: string): RepositoryLocation | undefined {
  const name = withoutTagAndDigest(reference);
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  // As docker's reference grammar: the first component names a registry only if it looks like a host.
  const hasHost = first.includes('.') || first.includes(':') || first === 'localhost';
  const host = hasHost ? first : DOCKER_HUB;
  let repository = hasHost ? name.slice(slash + 1) : name;
  if (host === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  if (host === '' || !REPOSITORY.test(repository)) return undefined;
  return { host, repository };
}

function withoutTagAndDigest(reference: string): string {
  const at = reference.indexOf('@');
  const name = at < 0 ? reference : reference.slice(0, at);
  const colon = name.lastIndexOf(':');
  // A colon after the last slash starts the tag; one before it is the registry's port.
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
}
