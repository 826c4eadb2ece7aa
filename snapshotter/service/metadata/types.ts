/**
 * The snapshot model, in containerd's terms (core/snapshots/snapshotter.go):
 * an active snapshot is writable and named by its `key`; committing it makes a
 * read-only snapshot called by its `name`; a view is a read-only snapshot of a
 * committed parent. Keys and names share one space per containerd namespace.
 */

export type Kind = 'view' | 'active' | 'committed';

export const KINDS: readonly Kind[] = ['view', 'active', 'committed'];

export type Labels = Record<string, string>;

/** What Stat, Update and List report about a snapshot. Times are ns since the epoch. */
export interface SnapshotInfo {
  /** Key of an active or view snapshot, name of a committed one. */
  name: string;
  /** Name of the committed parent; '' for a base snapshot. */
  parent: string;
  kind: Kind;
  created: bigint;
  updated: bigint;
  labels: Labels;
}

export interface Usage {
  /** Bytes on disk. */
  size: number;
  inodes: number;
}

/**
 * A snapshot as the file work sees it: the id names its directory, the
 * parent ids (nearest first) name the layers below it.
 */
export interface Snapshot {
  id: number;
  kind: Kind;
  parentIds: number[];
  /**
   * A read-only active snapshot: the id of the mountpoints layer that sits
   * above its parents in place of an upper dir. Absent otherwise.
   */
  mountpoints?: number;
}

/** An active snapshot or a view: a snapshot that has mounts. */
export interface MountableSnapshot extends Snapshot {
  kind: Exclude<Kind, 'committed'>;
}

/** The committed layers an active snapshot or view stands on, top first: its mountpoints layer, if any, then its parents. */
export function layersBelow(s: Snapshot): number[] {
  return s.mountpoints === undefined ? s.parentIds : [s.mountpoints, ...s.parentIds];
}

/**
 * A layer of a signed image, as checked when it was converted: what the
 * image's signature vouches for (docs/signatures.md, "On the node").
 */
export interface SignedLayer {
  /**
   * The dm-verity root hash the signature vouches for: the layer's entry in
   * the signed layer-root-hashes list (`signed-list`), or, without a list,
   * the one recomputed from a blob whose diff ID the signed config lists
   * (`signed-digest`). The layer's own root hash was checked equal to it.
   */
  rootHash: string;
  binding: 'signed-list' | 'signed-digest';
  /** The image and the manifest whose signature was verified. */
  image: string;
  manifest: string;
  /** Subject of the signing certificate. */
  signer: string;
}

/** What Commit records about the layer it produced. */
export interface CommittedLayer {
  usage: Usage;
  /** dm-verity root hash of layer.erofs (hex). */
  rootHash: string;
  /** Built from a layer blob whose diff ID makes this OCI chain ID (checked). */
  chainId?: string;
  /** Images known to use the layer. */
  images?: readonly string[];
  /** Set when the layer was checked against an image signature. */
  signed?: SignedLayer;
}

/** Where a committed layer came from, as far as the snapshotter checked or was told. */
export interface LayerOrigin {
  id: number;
  /** The chain ID checked when the layer was built from its blob; undefined for layers built from an upper dir. */
  chainId: string | undefined;
  /** Images recorded for the layer at pull time. */
  images: string[];
  /** Present when the layer was checked against an image signature. */
  signed?: SignedLayer;
}

/** A committed snapshot as mounting and checking its layer need it. */
export interface LayerRecord {
  id: number;
  namespace: string;
  /** The committed snapshot's name: containerd's chainID for image layers. */
  name: string;
  /** dm-verity root hash of layer.erofs recorded at Commit (hex). */
  rootHash: string;
  /** Images known to use the layer (recorded at pull). */
  images: string[];
  /** Present when the layer was checked against an image signature: then its root hash is the expected one. */
  signed?: SignedLayer;
}

/** A snapshot in a namespace, as reconcile and Cleanup see the whole store. */
export interface StoredSnapshot extends Snapshot {
  namespace: string;
  key: string;
}
