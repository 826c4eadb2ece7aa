/**
 * Where to fetch an image's blobs from, read from containerd's registry
 * hosts directory (CRI's `registry.config_path`, docs/hosts.md in
 * containerd): `<dir>/<host>/hosts.toml`, else `<dir>/_default/hosts.toml`,
 * else the registry itself over HTTPS. The facts are containerd 1.6's:
 *
 * - the `[host."<url>"]` tables are tried in the order they are written,
 *   `server` (default: the registry itself) last;
 * - a host without a scheme is HTTPS; its path is the API root, `/v2`
 *   appended unless it ends in it or `override_path` is set;
 * - capabilities default to all; only hosts with `pull` serve blobs;
 * - `ca` (one path or a list, relative to the host's directory; trusted
 *   besides the system's CAs), `skip_verify` and `header` may be set per
 *   host and at the top level (for `server`); client certificates are not
 *   supported here.
 */
import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { parse } from 'smol-toml';
import { isNotFound } from '../../core/errors.js';
import { RegistryConfigError } from './errors.js';
import { DOCKER_HUB } from './reference.js';

/** One place to fetch blobs from. */
export interface RegistryEndpoint {
  /** The API root, e.g. `https://mirror.example/v2`. */
  api: URL;
  /** PEM CA certificates to trust besides the system's. */
  ca: string[];
  skipVerify: boolean;
  headers: Record<string, string | string[]>;
}

/** The API host of Docker Hub, which references call docker.io. */
export const DOCKER_HUB_API = 'registry-1.docker.io';

/** The endpoints that serve pulls of `host`'s images, in the order to try them. */
export async function registryEndpoints(hostsDir: string | undefined, host: string): Promise<RegistryEndpoint[]> {
  const fallback = `https://${host === DOCKER_HUB ? DOCKER_HUB_API : host}`;
  const found = hostsDir === undefined ? undefined : await readHostsFile(hostsDir, host);
  if (!found) return [await endpoint(fallback, {}, '', 'the default')];
  const { file, dir, config } = found;
  const endpoints: RegistryEndpoint[] = [];
  const hosts = config['host'] ?? {};
  if (!isTable(hosts)) throw new RegistryConfigError(`${file}: "host" must be a table of [host."<url>"] tables`);
  for (const [url, table] of Object.entries(hosts)) {
    if (!isTable(table)) throw new RegistryConfigError(`${file}: [host.${JSON.stringify(url)}] must be a table`);
    if (canPull(table, file, url)) endpoints.push(await endpoint(url, table, dir, file));
  }
  const server = config['server'] ?? fallback;
  if (typeof server !== 'string') throw new RegistryConfigError(`${file}: "server" must be a string URL`);
  if (canPull(config, file, 'server')) endpoints.push(await endpoint(server, config, dir, file));
  return endpoints;
}

async function readHostsFile(hostsDir: string, host: string): Promise<{ file: string; dir: string; config: Record<string, unknown> } | undefined> {
  for (const name of [host, '_default']) {
    const dir = join(hostsDir, name);
    const file = join(dir, 'hosts.toml');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (isNotFound(err)) continue;
      throw new RegistryConfigError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    try {
      return { file, dir, config: parse(text) as Record<string, unknown> };
    } catch (err) {
      throw new RegistryConfigError(`${file} is not valid TOML: ${(err as Error).message.split('\n')[0]}`, { cause: err });
    }
  }
  return undefined;
}

function canPull(table: Record<string, unknown>, file: string, where: string): boolean {
  const capabilities = table['capabilities'];
  if (capabilities === undefined) return true;
  if (!Array.isArray(capabilities)) throw new RegistryConfigError(`${file}: capabilities of ${where} must be an array`);
  return capabilities.includes('pull');
}

async function endpoint(url: string, table: Record<string, unknown>, dir: string, file: string): Promise<RegistryEndpoint> {
  let api: URL;
  try {
    api = new URL(/^https?:\/\//.test(url) ? url : `https://${url}`);
  } catch {
    throw new RegistryConfigError(`${file}: ${JSON.stringify(url)} is not a registry URL`);
  }
  const path = api.pathname.replace(/\/+$/, '');
  api.pathname = table['override_path'] === true || path.endsWith('/v2') ? path : `${path}/v2`;
  const caPaths = table['ca'] === undefined ? [] : [table['ca']].flat();
  if (caPaths.some((p) => typeof p !== 'string')) throw new RegistryConfigError(`${file}: ca of ${url} must be a path or a list of paths`);
  const ca = await Promise.all((caPaths as string[]).map((p) => readCa(isAbsolute(p) ? p : join(dir, p), file)));
  const headers = table['header'] ?? {};
  if (!isTable(headers) || Object.values(headers).some((v) => typeof v !== 'string' && !(Array.isArray(v) && v.every((s) => typeof s === 'string')))) {
    throw new RegistryConfigError(`${file}: header of ${url} must map names to a string or a list of strings`);
  }
  return { api, ca, skipVerify: table['skip_verify'] === true, headers: headers as Record<string, string | string[]> };
}

async function readCa(path: string, file: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new RegistryConfigError(`${file}: cannot read CA certificate ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}
