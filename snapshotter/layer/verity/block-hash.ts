/**
 * The digest of one block in format 1: sha256(salt || block). Both data
 * blocks and hash blocks are hashed this way.
 */
import * as crypto from 'node:crypto';
import { verityParams } from './params.js';

const { dataBlockBytes, digestBytes } = verityParams;

/** crypto.hash (Node >= 20.12): a one-shot digest that allocates only its result. */
type OneShotHash = (algorithm: string, data: Uint8Array, outputEncoding: 'buffer') => Buffer;
const oneShot = (crypto as unknown as { hash?: OneShotHash }).hash;

export class SaltedDigest {
  /**
   * Hashing the salt once and copying that state per block costs a Hash
   * object and its native context per block; a whole layer's worth of them
   * kept the garbage collector busy (~30 ms per 200 MB). Where crypto.hash
   * exists, salt || block is copied into one scratch buffer and hashed in
   * one call instead: the copy is cheaper than the objects.
   */
  private readonly salted: crypto.Hash;
  private readonly scratch: Buffer | undefined;
  private readonly saltBytes: number;

  constructor(salt: Uint8Array) {
    this.salted = crypto.createHash(verityParams.hashAlgorithm).update(salt);
    this.saltBytes = salt.length;
    if (oneShot) {
      this.scratch = Buffer.alloc(salt.length + dataBlockBytes);
      this.scratch.set(salt);
    }
  }

  digest(block: Uint8Array): Buffer {
    return this.salted.copy().update(block).digest();
  }

  /** Digests of consecutive blocks (`blocks.length` a multiple of the block size), written to `out` from `outOffset`. */
  digestBlocks(blocks: Uint8Array, out: Uint8Array, outOffset = 0): void {
    const scratch = this.scratch;
    for (let at = 0, to = outOffset; at < blocks.length; at += dataBlockBytes, to += digestBytes) {
      const block = blocks.subarray(at, at + dataBlockBytes);
      if (scratch && oneShot) {
        scratch.set(block, this.saltBytes);
        out.set(oneShot(verityParams.hashAlgorithm, scratch, 'buffer'), to);
      } else {
        out.set(this.digest(block), to);
      }
    }
  }
}
