/**
 * Why a layer blob could not be fetched from its registry. Never fatal to a
 * pull: the snapshotter then lets containerd fetch the blob and unpack the
 * layer itself (docs/snapshotter.md, "Fetching layers").
 */
import { UnavailableError } from '../../core/errors.js';

export class RegistryFetchError extends UnavailableError {
  override readonly code: string = 'ERR_REGISTRY_FETCH';
}

/** A hosts.toml the snapshotter cannot use. */
export class RegistryConfigError extends RegistryFetchError {
  override readonly code = 'ERR_REGISTRY_CONFIG';
}
