/**
 * Builds small OCI images for tests, without network: layers as tars (gzip by
 * default), a config whose rootfs.diff_ids match, the manifest, and an OCI
 * layout holding them under a tag. The same layout feeds skopeo,
 * `ctr image import` (after `tarLayout()`), and `integrityctl image seal`.
 * `busyboxImage()` and `pauseImage()` are images containerd can run, made
 * from busybox-static.
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { OciLayout } from '../../snapshotter/oci/layout.js';
import { MediaType, serializeJson, type Annotations, type Descriptor, type ImageManifest } from '../../snapshotter/oci/types.js';
import { opaqueMarker, tar, whiteout, type TarMember } from './tar-writer.js';

export interface FileSpec {
  path: string;
  /** Default: 'file' when data is given, else 'directory'. */
  type?: TarMember['type'];
  data?: string | Uint8Array;
  mode?: number;
  linkTarget?: string;
  xattrs?: Record<string, string>;
}

/**
 * A tar archive of `files`, in order (uid/gid 0, mtime 1700000000), written by
 * the test tar builder, not by the production writer that flattening uses.
 */
export function makeTar(files: readonly FileSpec[]): Buffer {
  return Buffer.from(tar(files.map((f): TarMember => ({
    path: f.path,
    type: f.type ?? (f.data !== undefined ? 'file' : 'directory'),
    ...(f.data !== undefined ? { data: f.data } : {}),
    ...(f.mode !== undefined ? { mode: f.mode } : {}),
    ...(f.linkTarget !== undefined ? { linkTarget: f.linkTarget } : {}),
    mtime: 1700000000,
    xattrs: Object.entries(f.xattrs ?? {}),
  }))));
}

export interface TestImage {
  layout: OciLayout;
  manifest: ImageManifest;
  descriptor: Descriptor;
  /** Uncompressed layer tars, in manifest order. */
  tars: Buffer[];
}

/** The runtime part of an image config (image-spec config.md `config`), with its field names. */
export interface RunConfig {
  Entrypoint?: string[];
  Cmd?: string[];
  Env?: string[];
  WorkingDir?: string;
  User?: string;
  Labels?: Record<string, string>;
}

export interface BuildOptions {
  tag?: string;
  gzip?: boolean;
  /** Default: `{ Cmd: ['/bin/sh'] }`. */
  config?: RunConfig;
  /** Manifest annotations. Default: `{ 'org.example.built-by': 'test' }`. */
  annotations?: Annotations;
}

export async function buildImage(dir: string, layers: readonly FileSpec[][], options: BuildOptions = {}): Promise<TestImage> {
  const layout = await OciLayout.openOrCreate(dir);
  const tars = layers.map(makeTar);
  const gzip = options.gzip ?? true;
  const layerDescriptors: Descriptor[] = [];
  for (const tar of tars) {
    layerDescriptors.push(await layout.writeBlob(gzip ? gzipSync(tar) : tar, gzip ? MediaType.layerTarGzip : MediaType.layerTar));
  }
  const config = {
    architecture: 'amd64',
    os: 'linux',
    config: options.config ?? { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: tars.map((t) => `sha256:${createHash('sha256').update(t).digest('hex')}`) },
  };
  const configDescriptor = await layout.writeBlob(Buffer.from(JSON.stringify(config)), MediaType.imageConfig);
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MediaType.imageManifest,
    config: configDescriptor,
    layers: layerDescriptors,
    annotations: options.annotations ?? { 'org.example.built-by': 'test' },
  };
  const descriptor = await layout.writeBlob(serializeJson(manifest), MediaType.imageManifest);
  await layout.addManifest(descriptor, options.tag ?? 'latest');
  return { layout, manifest, descriptor, tars };
}

/**
 * Chain IDs of an image's layers (image-spec config.md): the names containerd
 * gives the committed snapshots, bottom layer first.
 */
export function chainIds(tars: readonly Uint8Array[]): string[] {
  const ids: string[] = [];
  for (const tar of tars) {
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    const previous = ids.at(-1);
    ids.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return ids;
}

/** The layout as a tar archive, the input `ctr image import` takes. */
export function tarLayout(dir: string, archive: string): void {
  execFileSync('tar', ['-C', dir, '-cf', archive, '.']);
}

/** An OCI whiteout entry: `path` is deleted from the layers below. */
export function whiteoutEntry(path: string): FileSpec {
  return { path: whiteout(path), data: '' };
}

/** An OCI opaque-directory marker: `directory` hides everything the layers below put in it. */
export function opaqueEntry(directory: string): FileSpec {
  return { path: opaqueMarker(directory), data: '' };
}

/** busybox-static, the one binary test containers run. */
export const BUSYBOX_BINARY = '/bin/busybox';

/**
 * A root filesystem from busybox-static: `bin/busybox`, `bin/sh` as a hard
 * link to it and every other applet as a symlink (so images carry both link
 * kinds), and an `etc/passwd`/`etc/group` naming root.
 */
export function busyboxFiles(): FileSpec[] {
  const applets = execFileSync(BUSYBOX_BINARY, ['--list'], { encoding: 'utf8' })
    .split('\n')
    .filter((name) => name !== '' && name !== 'sh' && name !== 'busybox');
  return [
    { path: 'bin/' },
    { path: 'bin/busybox', data: readFileSync(BUSYBOX_BINARY), mode: 0o755 },
    // A hard link's header carries the file's mode, as tar writes it: extractors
    // (containerd's among them) chmod the shared inode to the link's mode.
    { path: 'bin/sh', type: 'hardlink', linkTarget: 'bin/busybox', mode: 0o755 },
    ...applets.sort().map((name): FileSpec => ({ path: `bin/${name}`, type: 'symlink', linkTarget: 'busybox' })),
    { path: 'etc/' },
    { path: 'etc/passwd', data: 'root:x:0:0:root:/root:/bin/sh\n' },
    { path: 'etc/group', data: 'root:x:0:\n' },
    { path: 'root/', mode: 0o700 },
    { path: 'tmp/', mode: 0o1777 },
  ];
}

/** busybox as the first layer, `layers` above it; runs `/bin/sh` unless `config` says otherwise. */
export async function busyboxImage(dir: string, options: BuildOptions & { layers?: readonly FileSpec[][] } = {}): Promise<TestImage> {
  const { layers = [], ...build } = options;
  return buildImage(dir, [busyboxFiles(), ...layers], { tag: 'busybox', config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] }, ...build });
}

/**
 * A CRI sandbox ("pause") image. CRI starts the sandbox container with the
 * image's entrypoint and keeps it until StopPodSandbox kills it with SIGKILL,
 * so a process that sleeps forever is enough. busybox picks the applet from
 * argv[0] unless called as `busybox`, hence no `/pause` file.
 */
export async function pauseImage(dir: string, tag = 'pause'): Promise<TestImage> {
  const files: FileSpec[] = [{ path: 'bin/' }, { path: 'bin/busybox', data: readFileSync(BUSYBOX_BINARY), mode: 0o755 }];
  return buildImage(dir, [files], { tag, config: { Entrypoint: [BUSYBOX_BINARY, 'sleep', 'infinity'] } });
}
