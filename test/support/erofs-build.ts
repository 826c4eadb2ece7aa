/**
 * Helpers for EROFS writer tests: build an image from tar bytes (through the
 * real tar reader) or from entries, and make entries with defaults.
 */
import type { ByteString, TarEntry } from '../../snapshotter/layer/tar/entry.js';
import { TarParser } from '../../snapshotter/layer/tar/reader.js';
import { DataSpill } from '../../snapshotter/layer/spill.js';
import { ErofsBuilder } from '../../snapshotter/layer/erofs/writer.js';

export interface BuildOptions {
  /** Tar bytes are fed to the parser in pieces of this size. */
  chunkSize?: number;
  buildTime?: number;
  onWarning?: (message: string) => void;
}

/** The whole image for `tar`, as the writer streams it. */
export function buildErofs(tar: Uint8Array, options: BuildOptions = {}): Buffer {
  const chunkSize = options.chunkSize ?? 65536;
  return withBuilder(options, (builder) => {
    const parser = new TarParser(builder, { onVolumeLabel: (label) => builder.volumeLabel(label) });
    for (let i = 0; i < tar.length; i += chunkSize) parser.write(tar.subarray(i, i + chunkSize));
    parser.end();
  });
}

/** Entries with their data, fed straight to the builder (no tar). */
export type EntryWithData = TarEntry & { data?: Uint8Array };

export function buildErofsFromEntries(entries: readonly EntryWithData[], options: BuildOptions = {}): Buffer {
  return withBuilder(options, (builder) => {
    for (const { data, ...entry } of entries) {
      builder.entry(entry);
      if (data && data.length > 0) builder.data(data);
    }
    builder.end();
  });
}

function withBuilder(options: BuildOptions, feed: (builder: ErofsBuilder) => void): Buffer {
  const spill = DataSpill.create();
  try {
    const builder = new ErofsBuilder({
      spill,
      ...(options.buildTime !== undefined ? { buildTime: options.buildTime } : {}),
      ...(options.onWarning ? { onWarning: options.onWarning } : {}),
    });
    feed(builder);
    const image = builder.finish();
    const out = Buffer.alloc(image.bytes);
    let at = 0;
    for (const chunk of image.chunks()) {
      out.set(chunk, at);
      at += chunk.length;
    }
    if (at !== image.bytes) throw new Error(`image streamed ${at} of ${image.bytes} bytes`);
    return out;
  } finally {
    spill.close();
  }
}

let nextOffset = 0;

/** A tar entry with harmless defaults; `data` sets the size of files. */
export function tarEntry(path: ByteString, type: TarEntry['type'], fields: Partial<EntryWithData> = {}): EntryWithData {
  const data = fields.data;
  return {
    path,
    type,
    mode: type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644,
    uid: 0,
    gid: 0,
    mtime: 0,
    size: data?.length ?? 0,
    linkTarget: undefined,
    devMajor: 0,
    devMinor: 0,
    xattrs: [],
    offset: (nextOffset += 512),
    ...fields,
  };
}
