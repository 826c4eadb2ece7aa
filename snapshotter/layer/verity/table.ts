/**
 * The device-mapper table line of a dm-verity device, built from the pinned
 * parameters and the values we computed or were signed, never from anything
 * read off the hash device: whoever can write the hash file must not be able to
 * choose the parameters that check it.
 *
 * Format (kernel Documentation/admin-guide/device-mapper/verity.rst):
 * `<start> <length> verity <version> <data_dev> <hash_dev> <data_block_size>
 * <hash_block_size> <num_data_blocks> <hash_start_block> <algorithm> <digest> <salt>`
 */
import { InvalidArgumentError } from '../../core/errors.js';
import { SECTOR_BYTES, parseSaltHex, saltToHex, verityParams } from './params.js';

export interface VerityTableInput {
  /** Data device as the kernel takes it: a path (/dev/loop3) or major:minor (7:3). */
  dataDevice: string;
  /** Hash device, same forms. */
  hashDevice: string;
  dataBlocks: number;
  /** Hex root hash (case is normalised). */
  rootHash: string;
  /** Hex salt; default the pinned one; '' or '-' for none. */
  salt?: string;
  /** Hash block where the tree starts on the hash device; 0 for our superblock-less hash files. */
  hashStartBlock?: number;
}

/**
 * The table as one target for DM_TABLE_LOAD (native/dm.ts takes targets of
 * this shape): start and length in 512-byte sectors, then the verity parameters.
 */
export interface VerityTarget {
  start: 0;
  length: number;
  type: 'verity';
  params: string;
}

export function verityTarget(input: VerityTableInput): VerityTarget {
  const dataBlocks = blockCount(input.dataBlocks, 'data block count', 1);
  const hashStartBlock = blockCount(input.hashStartBlock ?? 0, 'hash start block', 0);
  const salt = saltToHex(parseSaltHex(input.salt ?? verityParams.saltHex)) || '-';
  const params = [
    verityParams.format,
    device(input.dataDevice, 'data device'),
    device(input.hashDevice, 'hash device'),
    verityParams.dataBlockBytes,
    verityParams.hashBlockBytes,
    dataBlocks,
    hashStartBlock,
    verityParams.hashAlgorithm,
    rootHashHex(input.rootHash),
    salt,
  ].join(' ');
  return { start: 0, length: dataBlocks * (verityParams.dataBlockBytes / SECTOR_BYTES), type: 'verity', params };
}

/** The table line as dmsetup and the kernel documentation write it. */
export function verityTable(input: VerityTableInput): string {
  const { start, length, type, params } = verityTarget(input);
  return `${start} ${length} ${type} ${params}`;
}

function blockCount(value: number, what: string, min: number): number {
  // The sector count must stay exact too, hence the divisor on the limit.
  const max = Math.floor(Number.MAX_SAFE_INTEGER / (verityParams.dataBlockBytes / SECTOR_BYTES));
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`dm-verity table: ${what} ${value} is not a whole number from ${min} to ${max}`);
  }
  return value;
}

/** The table is split on whitespace, so a device name with any would shift every field after it. */
function device(name: string, what: string): string {
  if (!/^\S+$/.test(name)) {
    throw new InvalidArgumentError(`dm-verity table: ${what} ${JSON.stringify(name)} is empty or contains whitespace`, {
      hint: 'give a device path such as /dev/loop3 or major:minor such as 7:3',
    });
  }
  return name;
}

function rootHashHex(hex: string): string {
  const digits = verityParams.digestBytes * 2;
  if (!new RegExp(`^[0-9a-fA-F]{${digits}}$`).test(hex)) {
    throw new InvalidArgumentError(`dm-verity table: root hash ${JSON.stringify(hex)} is not ${digits} hex digits`, {
      hint: `a ${verityParams.hashAlgorithm} root hash as veritysetup or \`integrityctl layer verity\` prints it`,
    });
  }
  return hex.toLowerCase();
}
