/**
 * Which containers get a read-only root filesystem: no overlay upper dir,
 * the mountpoints layer on top of the image layers. Protected images are
 * those a pattern names and — with `signedImages` — those whose manifest
 * carries a signature. A container is
 * `Prepare(key=<container>, parent=<top layer of its image>)`, and nothing in
 * that request names the image, so the policy asks two sources and protects
 * when either says so (fail closed):
 *
 *   1. what was recorded on the top layer when it was pulled: the images
 *      (CRI's image-ref label, or the images found while resolving an
 *      import's chain ID), and the signed image it was checked against —
 *      they stay known while containerd is busy;
 *   2. containerd's image service now: every protected image of the
 *      namespace whose layer chain contains the top layer's chain ID. A layer
 *      chain shared by a protected and an unprotected image is protected; an
 *      image named by a pattern whose documents cannot be read protects every
 *      container, and so does an image service that does not answer (the
 *      Prepare is refused, saying so).
 */
import { FailedPreconditionError, toIntegrityError } from '../../core/errors.js';
import type { ReadOnlyMode } from '../../core/config.js';
import type { Logger } from '../../core/log.js';
import type { ImagePatterns } from '../../policy/image-patterns.js';
import { hasBundle } from '../../signature/bundle.js';
import type { ImageLayers } from '../containerd/image-layers.js';
import type { MountpointsSpec } from './mountpoints.js';

export interface TopLayer {
  /** The snapshot name of the container's parent (for messages). */
  name: string;
  chainId: string | undefined;
  /** Images recorded for it at pull time. */
  images: readonly string[];
  /** The image whose signature the layer was checked against when it was converted, if any. */
  signedImage?: string | undefined;
}

export interface RootfsDecision {
  readOnly: boolean;
  /** Why, for the log: the rule, or the image and the pattern that matched. */
  reason: string;
}

export interface RootfsPolicyOptions {
  mode: ReadOnlyMode;
  patterns: ImagePatterns;
  /** containerd's images; undefined when no pattern needs them. */
  imageLayers: ImageLayers | undefined;
  /** Containers of images whose manifest carries a signature are protected too. */
  signedImages?: boolean;
  mountpoints: MountpointsSpec;
  logger: Logger;
}

export class RootfsPolicy {
  readonly mountpoints: MountpointsSpec;
  private readonly mode: ReadOnlyMode;
  private readonly patterns: ImagePatterns;
  private readonly imageLayers: ImageLayers | undefined;
  private readonly signedImages: boolean;
  private readonly logger: Logger;

  constructor(options: RootfsPolicyOptions) {
    this.mode = options.mode;
    this.patterns = options.patterns;
    this.imageLayers = options.imageLayers;
    this.signedImages = options.signedImages ?? false;
    this.mountpoints = options.mountpoints;
    this.logger = options.logger;
  }

  /** Whether any container can be read-only: then the mountpoints layer is needed. */
  get active(): boolean {
    return this.mode === 'all' || !this.patterns.empty || this.signedImages;
  }

  async decide(ns: string, top: TopLayer): Promise<RootfsDecision> {
    if (this.mode === 'all') return { readOnly: true, reason: 'rootfs.read_only = "all"' };
    if (top.signedImage !== undefined) return { readOnly: true, reason: `layer checked against the signature of image ${top.signedImage}` };
    if (!this.active) return { readOnly: false, reason: 'no protected images configured' };
    for (const image of top.images) {
      const pattern = this.patterns.match(image);
      if (pattern !== undefined) return { readOnly: true, reason: `layer recorded for image ${image}, protected by ${JSON.stringify(pattern)}` };
    }
    if (top.chainId === undefined || this.imageLayers === undefined) return { readOnly: false, reason: 'no protected image recorded for the layer' };
    let images;
    try {
      images = await this.imageLayers.imageChains(ns, (name) => this.signedImages || this.patterns.match(name) !== undefined);
    } catch (err) {
      const e = toIntegrityError(err);
      throw new FailedPreconditionError(
        `cannot decide whether a container on layer ${top.chainId} (snapshot ${top.name}) gets a read-only root filesystem: ${e.message}`,
        { hint: e.hint ?? 'check containerd_address in the snapshotter config', cause: e },
      );
    }
    for (const image of images) {
      const pattern = this.patterns.match(image.name);
      if (image.error) {
        // An unreadable image no pattern names has no containers either: containerd cannot read its config.
        if (pattern === undefined) continue;
        this.logger.warn({ ns, image: image.name, chainId: top.chainId }, 'protected image unreadable: treating the container as protected');
        return { readOnly: true, reason: `protected image ${image.name} (${JSON.stringify(pattern)}) cannot be read: ${image.error.message}` };
      }
      const using = image.manifests.filter((m) => m.layers.some((l) => l.chainId === top.chainId));
      if (using.length === 0) continue;
      if (pattern !== undefined) return { readOnly: true, reason: `image ${image.name} uses the layer, protected by ${JSON.stringify(pattern)}` };
      if (using.some((m) => hasBundle(m.document.annotations))) return { readOnly: true, reason: `signed image ${image.name} uses the layer` };
    }
    return { readOnly: false, reason: 'no protected image uses the layer' };
  }
}
