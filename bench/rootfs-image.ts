/**
 * The image both snapshotter benchmarks use: `layers` generated Debian-like
 * gzip layers (rootfs-layer.ts, one seed each; the first biggest, as a
 * distribution's base layer is) with busybox-static on top so containers
 * run, as an OCI layout tagged `v1` — what skopeo pushes to a registry, and,
 * tarred, what `ctr image import` takes.
 */
import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { OciLayout } from '../snapshotter/oci/layout.js';
import { MediaType, serializeJson, type Descriptor } from '../snapshotter/oci/types.js';
import { busyboxFiles, makeTar } from '../test/support/oci-image.js';
import { mib } from './report.js';
import { writeLayer } from './rootfs-layer.js';

export const IMAGE_TAG = 'v1';

export interface RootfsImage {
  /** The OCI layout, tagged IMAGE_TAG. */
  layout: string;
  /** The layer blobs' digests, bottom first. */
  layerDigests: string[];
  /** One line: every layer's files and sizes. */
  summary: string;
}

/** Writes the image's layout to `<dir>/layout`, `totalMiB` of tar over the generated layers. */
export async function writeRootfsImage(dir: string, totalMiB: number, layers: number): Promise<RootfsImage> {
  const layoutDir = join(dir, 'layout');
  const layout = await OciLayout.openOrCreate(layoutDir);
  const weights = Array.from({ length: layers }, (_, i) => 0.6 ** i);
  const sum = weights.reduce((a, b) => a + b, 0);
  const descriptors: Descriptor[] = [];
  const diffIds: string[] = [];
  const parts: string[] = [];
  for (let i = 0; i < layers; i++) {
    const path = join(dir, `layer-${i}.tar.gz`);
    const stats = await writeLayer(path, (totalMiB * 2 ** 20 * weights[i]!) / sum, 0x5eed + i);
    descriptors.push(await layout.writeBlob(readFileSync(path), MediaType.layerTarGzip));
    diffIds.push(stats.diffId);
    parts.push(`${stats.files} files, tar ${mib(stats.tarBytes)}, gzip ${mib(stats.gzipBytes)}`);
    rmSync(path);
  }
  const busybox = makeTar(busyboxFiles());
  descriptors.push(await layout.writeBlob(gzipSync(busybox), MediaType.layerTarGzip));
  diffIds.push(`sha256:${createHash('sha256').update(busybox).digest('hex')}`);
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin:/usr/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
  };
  const configDescriptor = await layout.writeBlob(Buffer.from(JSON.stringify(config)), MediaType.imageConfig);
  const manifest = { schemaVersion: 2, mediaType: MediaType.imageManifest, config: configDescriptor, layers: descriptors };
  await layout.addManifest(await layout.writeBlob(serializeJson(manifest), MediaType.imageManifest), IMAGE_TAG);
  return {
    layout: layoutDir,
    layerDigests: descriptors.map((d) => d.digest),
    summary: `${parts.map((p, i) => `layer ${i + 1}: ${p}`).join('; ')}; busybox on top`,
  };
}
