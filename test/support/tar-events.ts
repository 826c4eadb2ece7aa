/**
 * Runs the tar reader over bytes and records what it delivered: each member
 * with its data joined, warnings and volume labels. The reader's data chunks
 * are views of the input, so they are copied here as the sink contract asks.
 */
import type { TarEntry } from '../../snapshotter/layer/tar/entry.js';
import { TarParser, type TarWarning } from '../../snapshotter/layer/tar/reader.js';

export interface ParsedMember {
  entry: TarEntry;
  data: Buffer;
}

export interface ParseResult {
  members: ParsedMember[];
  warnings: TarWarning[];
  volumeLabels: Buffer[];
  ended: boolean;
}

/** Parses `chunks` in order (one Uint8Array is one chunk); throws what the reader throws. */
export function parseChunks(chunks: Uint8Array | Uint8Array[]): ParseResult {
  const result: ParseResult = { members: [], warnings: [], volumeLabels: [], ended: false };
  let current: { entry: TarEntry; parts: Buffer[] } | undefined;
  const flush = (): void => {
    if (current) result.members.push({ entry: current.entry, data: Buffer.concat(current.parts) });
    current = undefined;
  };
  const parser = new TarParser({
    entry: (entry) => {
      flush();
      current = { entry, parts: [] };
    },
    data: (chunk) => current!.parts.push(Buffer.from(chunk)),
    end: () => {
      flush();
      result.ended = true;
    },
  }, {
    onWarning: (warning) => result.warnings.push(warning),
    onVolumeLabel: (label) => result.volumeLabels.push(Buffer.from(label)),
  });
  for (const chunk of Array.isArray(chunks) ? chunks : [chunks]) parser.write(chunk);
  parser.end();
  return result;
}
