/**
 * The pinned dm-verity contract. Root hashes are signed and compared with
 * Delivery Kit's, so every value here must stay what `veritysetup format
 * --data-block-size=4096 --hash-block-size=4096 --salt=<pinned> --no-superblock`
 * uses; changing one changes every root hash.
 */
import { InvalidArgumentError } from '../../core/errors.js';

export const verityParams = Object.freeze({
  hashAlgorithm: 'sha256',
  digestBytes: 32,
  dataBlockBytes: 4096,
  hashBlockBytes: 4096,
  /** veritysetup's "hash type", the kernel table's "version": 1 = salt hashed before the block. */
  format: 1,
  saltHex: 'dc0f616e4bf75776061d5ffb7a6f45e1313b7cc86f3aa49b68de4f6d187bad2b',
  /** The tree sits in its own file from block 0; nothing on disk describes it, the table does. */
  superblock: false,
} as const);

export const DIGESTS_PER_HASH_BLOCK = verityParams.hashBlockBytes / verityParams.digestBytes;

/** Device-mapper counts lengths in 512-byte sectors whatever the device's block size. */
export const SECTOR_BYTES = 512;

/** veritysetup refuses longer salts (VERITY_create: salt_size > 256). */
export const MAX_SALT_BYTES = 256;

/** A fresh copy, so no caller can change the contract for the others. */
export function pinnedSalt(): Uint8Array {
  return Buffer.from(verityParams.saltHex, 'hex');
}

/**
 * Salt from hex as veritysetup's `--salt` takes it; `-` (or an empty string)
 * means no salt, as in veritysetup and the kernel table.
 */
export function parseSaltHex(hex: string): Uint8Array {
  if (hex === '-' || hex === '') return new Uint8Array(0);
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(hex)) {
    throw new InvalidArgumentError(`salt ${JSON.stringify(hex)} is not hex`, {
      hint: `give an even number of hex digits (the pinned salt is ${verityParams.saltHex}), or - for no salt`,
    });
  }
  return checkSalt(Buffer.from(hex, 'hex'));
}

export function checkSalt(salt: Uint8Array): Uint8Array {
  if (salt.length > MAX_SALT_BYTES) {
    throw new InvalidArgumentError(`salt is ${salt.length} bytes; dm-verity allows at most ${MAX_SALT_BYTES}`, {
      hint: 'use a shorter salt, or leave it out to use the pinned one',
    });
  }
  return salt;
}

export function saltToHex(salt: Uint8Array): string {
  return Buffer.from(salt.buffer, salt.byteOffset, salt.length).toString('hex');
}
