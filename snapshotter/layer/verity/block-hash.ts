/**
 * The digest of one block in format 1: sha256(salt || block). Both data
 * blocks and hash blocks are hashed this way.
 */
import { createHash, type Hash } from 'node:crypto';
import { verityParams } from './params.js';

const { dataBlockBytes, digestBytes } = verityParams;

export class SaltedDigest {
  /**
   * Hashing the salt once and copying that state per block measured as fast as
   * a fresh hash per block or crypto.hash() over salt||block (the cost is the
   * per-call overhead either way), and copy() works on every Node we support.
   */
  private readonly salted: Hash;

  constructor(salt: Uint8Array) {
    this.salted = createHash(verityParams.hashAlgorithm).update(salt);
  }

  digest(block: Uint8Array): Buffer {
    return this.salted.copy().update(block).digest();
  }

  /** Digests of consecutive blocks (`blocks.length` a multiple of the block size), written to `out` from `outOffset`. */
  digestBlocks(blocks: Uint8Array, out: Uint8Array, outOffset = 0): void {
    for (let at = 0, to = outOffset; at < blocks.length; at += dataBlockBytes, to += digestBytes) {
      out.set(this.digest(blocks.subarray(at, at + dataBlockBytes)), to);
    }
  }
}
