/**
 * Where each level of the hash tree lives in the hash file (format of
 * cryptsetup's lib/verity/verity_hash.c, hash_levels()).
 *
 * Level 0 holds the digests of the data blocks, level i+1 the digests of level
 * i's hash blocks, 128 digests per 4096-byte block, the last block of a level
 * zero-padded. Levels are added until one level is a single block; its digest
 * is the root hash. The file stores the levels top-down (the single top block
 * at block 0, level 0 last) so the kernel can find the top without knowing the
 * data size. One data block needs no level at all: its digest is the root.
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { DIGESTS_PER_HASH_BLOCK, verityParams } from './params.js';

export interface VerityTreeLayout {
  dataBlocks: number;
  /** Hash blocks in each level; index 0 = level 0 (digests of data blocks). */
  levelBlocks: readonly number[];
  /** First block of each level in the hash file; index as in levelBlocks. */
  levelStart: readonly number[];
  /** Size of the hash file in hash blocks. */
  hashBlocks: number;
}

export function verityTreeLayout(dataBlocks: number): VerityTreeLayout {
  if (!Number.isSafeInteger(dataBlocks) || dataBlocks < 1) {
    throw new InvalidArgumentError(`a dm-verity tree needs at least one data block, not ${dataBlocks}`);
  }
  const levelBlocks: number[] = [];
  for (let below = dataBlocks; below > 1; ) {
    below = Math.ceil(below / DIGESTS_PER_HASH_BLOCK);
    levelBlocks.push(below);
  }
  const levelStart: number[] = new Array<number>(levelBlocks.length);
  let hashBlocks = 0;
  for (let level = levelBlocks.length - 1; level >= 0; level--) {
    levelStart[level] = hashBlocks;
    hashBlocks += levelBlocks[level]!;
  }
  return { dataBlocks, levelBlocks, levelStart, hashBlocks };
}

/**
 * Data blocks for `bytes` of data, or a clear refusal. veritysetup silently
 * leaves a trailing partial block out of the tree (those bytes are then not
 * protected) and fails on fewer than 4096 bytes; we refuse both, so a root hash
 * always covers every byte it is reported for.
 */
export function dataBlocksOf(bytes: number, subject: string): number {
  const { dataBlockBytes } = verityParams;
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new InvalidArgumentError(`${subject}: size ${bytes} is not a byte count`);
  }
  if (bytes === 0) {
    throw new InvalidArgumentError(`${subject} is empty; dm-verity needs at least one ${dataBlockBytes}-byte block`, {
      hint: 'veritysetup refuses empty data too; check that the image was written completely',
    });
  }
  if (bytes % dataBlockBytes !== 0) {
    throw new InvalidArgumentError(
      `${subject} is ${bytes} bytes, not a multiple of the ${dataBlockBytes}-byte dm-verity block`,
      {
        hint:
          `veritysetup would leave the last ${bytes % dataBlockBytes} bytes unprotected, so this is refused; ` +
          `EROFS images are always block-aligned, other files can be zero-padded (truncate -s %${dataBlockBytes})`,
      },
    );
  }
  return bytes / dataBlockBytes;
}
