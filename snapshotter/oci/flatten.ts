/**
 * The flattened image as Delivery Kit computes it for the manifest's
 * dm-verity root hash: delivery-kit-sdk's CalculateImageDMVerityRootHash runs
 * go-containerregistry's `mutate.Extract` over the image and pipes the result
 * into mkfs.erofs. This module reproduces that tar stream:
 *
 * - layers are read top (last) first; within a layer, in archive order;
 * - a name is cleaned like Go's filepath.Clean (`./a/` → `a`);
 * - the first (top-most) occurrence of a name wins; a later one is dropped;
 * - `.wh.X` marks X deleted: it is not written, and X and everything below it
 *   in lower layers is dropped;
 * - a non-directory hides everything below its name in lower layers, a
 *   directory does not (its lower contents merge in);
 * - `.wh..wh..opq` is treated like any whiteout (of the name `.wh..opq`):
 *   go-containerregistry does not implement opaque directories, so lower
 *   layers' files in an opaque directory DO appear in the flattened image.
 *   That is what Delivery Kit signs, so we reproduce it.
 *
 * Each kept member is re-emitted as a pax tar member (tar-writer.ts), as Go's
 * tar writer re-emits it. Known difference: go-containerregistry passes PAX
 * global headers through as members, our tar parser folds them into the
 * members they apply to; the result differs only for layers with global
 * headers that set xattrs.
 */
import { posix } from 'node:path';
import { decompressLayer } from '../layer/compression.js';
import type { ByteString, TarEntry, TarSink } from '../layer/tar/entry.js';
import { TarParser } from '../layer/tar/reader.js';
import { WHITEOUT_PREFIX } from '../layer/tar/whiteout.js';
import { TAR_END, tarHeader, tarPadding } from './tar-writer.js';

/** Opens a layer blob (compressed or not) for reading; called once per layer. */
export type LayerOpener = () => AsyncIterable<Uint8Array>;

/** The flattened image as one uncompressed tar stream; `layers` in manifest order (base first). */
export async function* flattenLayers(layers: readonly LayerOpener[]): AsyncIterable<Uint8Array> {
  const seen = new Map<ByteString, boolean>(); // name → hides lower names below it
  for (let i = layers.length - 1; i >= 0; i--) {
    const out: Uint8Array[] = [];
    const parser = new TarParser(new FlattenSink(seen, out));
    for await (const chunk of decompressLayer(layers[i]!())) {
      parser.write(chunk);
      yield* out.splice(0);
    }
    parser.end();
    yield* out.splice(0);
  }
  yield TAR_END;
}

class FlattenSink implements TarSink {
  #remaining = 0;
  #size = 0;
  #keep = false;

  constructor(
    private readonly seen: Map<ByteString, boolean>,
    private readonly out: Uint8Array[],
  ) {}

  entry(entry: TarEntry): void {
    const path = goClean(entry.path);
    const base = posix.basename(path);
    const tombstone = base.startsWith(WHITEOUT_PREFIX);
    const name = entry.type === 'directory' ? path : posix.join(posix.dirname(path), tombstone ? base.slice(WHITEOUT_PREFIX.length) : base);
    this.#keep = false;
    if (!this.seen.has(name) && !inDeletedDirectory(this.seen, name)) {
      this.seen.set(name, tombstone || entry.type !== 'directory');
      this.#keep = !tombstone;
    }
    this.#remaining = this.#size = entry.size;
    if (this.#keep) {
      this.out.push(tarHeader({ ...entry, path }));
      if (entry.size === 0) return;
    }
  }

  data(chunk: Uint8Array): void {
    this.#remaining -= chunk.length;
    if (!this.#keep) return;
    // The parser's chunks are views of its input; copy before keeping.
    this.out.push(Uint8Array.from(chunk));
    if (this.#remaining === 0) this.out.push(tarPadding(this.#size));
  }

  end(): void {}
}

/** Go's path.Clean: no `.`/`..`/empty segments, no trailing slash; `` → `.`. */
export function goClean(path: ByteString): ByteString {
  if (path === '') return '.';
  const normal = posix.normalize(path);
  return normal.length > 1 && normal.endsWith('/') ? normal.replace(/\/+$/, '') : normal;
}

/** Whether an ancestor of `name` was deleted or replaced by a non-directory in a higher layer. */
function inDeletedDirectory(seen: Map<ByteString, boolean>, name: ByteString): boolean {
  for (let dir = posix.dirname(name), prev = name; dir !== prev; prev = dir, dir = posix.dirname(dir)) {
    if (seen.get(dir) === true) return true;
  }
  return false;
}
