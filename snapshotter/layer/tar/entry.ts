/**
 * The contract between the tar reader and the EROFS tree builder.
 *
 * Names are byte strings: JavaScript strings that hold one byte per UTF-16 code
 * unit (Node's 'latin1' encoding). Tar and EROFS names are bytes, not text; this
 * keeps them exact (non-UTF-8 names survive), and `<` on such strings is the
 * same as memcmp on the bytes, which is the order EROFS directories need.
 * Use `displayName()` to show one to a person.
 */

/** One byte per char; see the module comment. */
export type ByteString = string;

export type TarEntryType = 'file' | 'hardlink' | 'symlink' | 'char' | 'block' | 'directory' | 'fifo';

export interface TarXattr {
  /** Full name with its namespace prefix, e.g. `user.foo`, `security.capability`. */
  name: ByteString;
  value: Uint8Array;
}

/**
 * One archive member after PAX (`x`, `g`) and GNU (`L`, `K`) headers have been
 * applied to it. Metadata-only members never reach the sink.
 */
export interface TarEntry {
  /**
   * Path exactly as the archive gives it, trailing slashes removed; `.` for an empty name.
   * Exception, as in erofs-utils 1.8.10: a GNU long name ('L') keeps its trailing slashes.
   */
  path: ByteString;
  type: TarEntryType;
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch; fractional PAX mtimes are truncated. */
  mtime: number;
  /** Data bytes that follow the header (regular files; 0 for everything else). */
  size: number;
  /** Symlink target or hardlink target path. */
  linkTarget: ByteString | undefined;
  devMajor: number;
  devMinor: number;
  /** PAX xattrs of this entry merged with the global ones, in the order mkfs.erofs 1.8.10 applies them. */
  xattrs: TarXattr[];
  /** Byte offset of the entry's first header (including PAX/GNU headers) in the uncompressed tar. */
  offset: number;
}

/**
 * Receives a tar stream's members. Calls come in archive order:
 * entry(e), then data(...) until e.size bytes were delivered (regular files
 * only), then the next entry; end() after the end-of-archive marker.
 * The sink may throw a LayerFormatError to stop the conversion.
 */
export interface TarSink {
  entry(entry: TarEntry): void;
  data(chunk: Uint8Array): void;
  end(): void;
}

export function displayName(name: ByteString): string {
  return Buffer.from(name, 'latin1').toString('utf8');
}
