/**
 * Conversions started at the Prepare of an unpack that takes the writable
 * path because it carries no labels (`ctr image import`, `ctr image pull`),
 * when its blob is already in containerd: the layer is built from the blob
 * into the snapshot's directory while containerd writes the same tar into
 * the upper dir, and the Commit takes the result instead of converting then.
 * Without this the two run one after the other, and the conversion inside
 * containerd's Commit — which holds containerd's metadata write transaction.
 *
 * A result counts only for the chain ID the Commit names. Its directory is
 * held from the start until the Commit or Remove of the snapshot, so Cleanup
 * leaves the layer files in it alone (in an active snapshot they would
 * otherwise be a dead Commit's leftovers).
 */
import type { CommittedLayer } from '../metadata/types.js';

export interface BuiltAhead {
  layer: CommittedLayer;
  /** The blob it was built from. */
  digest: string;
}

interface Ahead {
  chainId: string;
  dir: string;
  result: Promise<BuiltAhead | undefined>;
}

export class ConversionsAhead {
  private readonly pending = new Map<string, Ahead>();

  /**
   * Starts `convert` (undefined: no blob to build from) for the snapshot
   * `key`, whose directory is `dir`; the result is for the caller to wait for
   * too, but only take() hands it over.
   */
  start(key: string, chainId: string, dir: string, convert: () => Promise<BuiltAhead | undefined>): Promise<BuiltAhead | undefined> {
    const result = convert();
    // Settled by take() or drop(); until then a failure must not count as unhandled.
    result.catch(() => undefined);
    this.pending.set(key, { chainId, dir, result });
    return result;
  }

  /**
   * The layer built ahead for `key`, if it was built as `chainId`; undefined
   * when nothing was started for it, no blob was found, or it was built for
   * another chain. Throws what the conversion threw: the same blob, checked
   * again, would fail the same way.
   */
  async take(key: string, chainId: string | undefined): Promise<BuiltAhead | undefined> {
    const ahead = this.pending.get(key);
    if (!ahead) return undefined;
    try {
      if (ahead.chainId !== chainId) {
        await ahead.result.catch(() => undefined);
        return undefined;
      }
      return await ahead.result;
    } finally {
      this.pending.delete(key);
    }
  }

  /** The snapshot `key` is being removed: waits for its conversion and forgets it. */
  async drop(key: string): Promise<void> {
    await this.take(key, undefined).catch(() => undefined);
  }

  /** Whether a conversion ahead owns `dir` (Cleanup must leave it alone). */
  holds(dir: string): boolean {
    for (const ahead of this.pending.values()) if (ahead.dir === dir) return true;
    return false;
  }
}
