/**
 * Fetches layer blobs from the registry an image was pulled from, the way
 * containerd's resolver does for `PullImage`: the endpoints of the hosts
 * directory in order (hosts.ts), anonymous bearer tokens when a registry
 * asks for one (the Docker token protocol: `WWW-Authenticate: Bearer
 * realm=…,service=…,scope=…`), redirects to blob storage followed, the
 * environment's HTTP proxy used (proxy.ts).
 *
 * Only what a pull can do without credentials: a registry that wants a
 * password gets none, and the caller lets containerd fetch the blob with the
 * credentials kubelet gave it. The bytes are untrusted here; the layer
 * pipeline checks the digest while it converts them.
 */
import { request as httpRequest, type ClientRequest, type IncomingHttpHeaders, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { isIP, type Socket } from 'node:net';
import { connect as tlsConnect, rootCertificates } from 'node:tls';
import type { Logger } from '../../core/log.js';
import { RegistryFetchError } from './errors.js';
import { DOCKER_HUB_API, registryEndpoints, type RegistryEndpoint } from './hosts.js';
import { proxyFor } from './proxy.js';
import { DOCKER_HUB, repositoryLocation, type RepositoryLocation } from './reference.js';

export interface RegistryClientOptions {
  /** containerd's registry hosts directory; undefined: every registry is asked directly over HTTPS. */
  hostsDir: string | undefined;
  logger: Logger;
  /** A connection or an answer that takes longer than this fails the fetch (default 10 s). */
  answerTimeoutMs?: number;
  /** A pause in a body longer than this fails the fetch (default 30 s). */
  idleTimeoutMs?: number;
  /** How long a registry none of whose endpoints served a blob is not asked again (default 60 s). */
  backoffMs?: number;
  /** Where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read (default: the process's environment). */
  env?: NodeJS.ProcessEnv;
}

/** Where a fetch ended up: its status and headers, the body still to be read. */
type Answer = IncomingMessage & { statusCode: number };

const MAX_REDIRECTS = 5;
const BLOB_ACCEPT = 'application/octet-stream, */*';

interface Token {
  value: string;
  expiresAt: number;
}

export class RegistryClient {
  private readonly hostsDir: string | undefined;
  private readonly logger: Logger;
  private readonly answerTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  private readonly backoffMs: number;
  private readonly env: NodeJS.ProcessEnv;
  /** Anonymous tokens by endpoint and repository, so the next blob skips the 401 round trip. */
  private readonly tokens = new Map<string, Token>();
  /** Registries that failed, until when they are not asked: the layers of a pull must not each wait for the same failure. */
  private readonly failedUntil = new Map<string, number>();

  constructor(options: RegistryClientOptions) {
    this.hostsDir = options.hostsDir;
    this.logger = options.logger;
    this.answerTimeoutMs = options.answerTimeoutMs ?? 10_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.backoffMs = options.backoffMs ?? 60_000;
    this.env = options.env ?? process.env;
  }

  /** False while `reference`'s registry is in its back-off after a failure. */
  mayFetch(reference: string): boolean {
    const host = repositoryLocation(reference)?.host;
    return host !== undefined && (this.failedUntil.get(host) ?? 0) <= Date.now();
  }

  /**
   * The bytes of blob `digest` of `reference`'s repository, from the first
   * endpoint that serves it. Throws RegistryFetchError when none does; a
   * failure while the body is read is a RegistryFetchError too.
   */
  async openBlob(reference: string, digest: string): Promise<AsyncIterable<Uint8Array>> {
    const location = repositoryLocation(reference);
    if (!location) throw new RegistryFetchError(`${JSON.stringify(reference)} is not an image reference`);
    const failures: string[] = [];
    for (const endpoint of await registryEndpoints(this.hostsDir, location.host)) {
      try {
        const answer = await this.fetchBlob(endpoint, location, digest);
        this.logger.debug({ digest, endpoint: endpoint.api.href }, 'fetching a layer blob from the registry');
        this.failedUntil.delete(location.host);
        return checkedBody(answer, `${digest} from ${endpoint.api.origin}`, () => this.backOff(location.host));
      } catch (err) {
        failures.push(`${endpoint.api.origin}: ${(err as Error).message}`);
      }
    }
    this.backOff(location.host);
    throw new RegistryFetchError(`cannot fetch blob ${digest} of ${reference}: ${failures.join('; ')}`, {
      hint: "containerd fetches it instead; check the registry hosts directory (registry.config_path) if every pull's first layer is unpacked by containerd",
    });
  }

  private backOff(host: string): void {
    this.failedUntil.set(host, Date.now() + this.backoffMs);
  }

  private async fetchBlob(endpoint: RegistryEndpoint, location: RepositoryLocation, digest: string): Promise<Answer> {
    const url = new URL(`${endpoint.api.href.replace(/\/$/, '')}/${location.repository}/blobs/${digest}`);
    // As containerd: a mirror is told which registry the repository belongs to.
    const ownHost = location.host === DOCKER_HUB ? DOCKER_HUB_API : location.host;
    if (url.host !== ownHost) url.searchParams.set('ns', location.host);
    const tokenKey = `${endpoint.api.origin}\0${location.repository}`;
    const cached = this.tokens.get(tokenKey);
    let answer = await this.get(url, endpoint, cached && cached.expiresAt > Date.now() ? cached.value : undefined);
    if (answer.statusCode === 401) {
      const challenge = bearerChallenge(answer.headers);
      answer.resume();
      if (!challenge) throw new RegistryFetchError('the registry wants credentials (401 without a bearer challenge)');
      const token = await this.anonymousToken(challenge, location, endpoint);
      // Expired tokens go as new ones come: a node pulls from many repositories over its life.
      for (const [key, old] of this.tokens) if (old.expiresAt <= Date.now()) this.tokens.delete(key);
      this.tokens.set(tokenKey, token);
      answer = await this.get(url, endpoint, token.value);
    }
    if (answer.statusCode !== 200) {
      answer.resume();
      throw new RegistryFetchError(`HTTP ${answer.statusCode} for ${url.pathname}`);
    }
    return answer;
  }

  /** GET with redirects; the token and configured headers go only to the endpoint's own origin. */
  private async get(url: URL, endpoint: RegistryEndpoint, token: string | undefined, accept = BLOB_ACCEPT): Promise<Answer> {
    let target = url;
    for (let hop = 0; ; hop++) {
      const own = target.origin === endpoint.api.origin;
      const headers: OutgoingHttpHeaders = { accept, ...(own ? endpoint.headers : {}), ...(own && token ? { authorization: `Bearer ${token}` } : {}) };
      const answer = await this.send(target, endpoint, headers);
      const location = answer.headers.location;
      if (![301, 302, 303, 307, 308].includes(answer.statusCode) || !location) return answer;
      answer.resume();
      if (hop === MAX_REDIRECTS) throw new RegistryFetchError(`more than ${MAX_REDIRECTS} redirects from ${url.href}`);
      target = new URL(location, target);
    }
  }

  /** One GET, directly or through the environment's proxy (proxy.ts): an http URL whole to the proxy, https through a CONNECT tunnel. */
  private async send(url: URL, endpoint: RegistryEndpoint, headers: OutgoingHttpHeaders): Promise<Answer> {
    // As containerd's host client, which also fetches tokens and follows redirects: its CAs beside the system's.
    const tls = url.protocol === 'https:'
      ? { ...(endpoint.ca.length > 0 ? { ca: [...rootCertificates, ...endpoint.ca] } : {}), rejectUnauthorized: !endpoint.skipVerify }
      : {};
    const proxy = proxyFor(url, this.env);
    if (!proxy) return this.exchange(url, (done) => (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method: 'GET', headers, ...tls }, done));
    const viaProxy = proxyAuthorization(proxy);
    if (url.protocol === 'http:') {
      return this.exchange(url, (done) => requestTo(proxy)(proxyOrigin(proxy), { method: 'GET', path: url.href, headers: { ...headers, ...viaProxy, host: url.host } }, done));
    }
    const socket = await this.tunnel(proxy, url, viaProxy);
    const servername = isIP(url.hostname.replace(/^\[|\]$/g, '')) ? undefined : url.hostname;
    const secure = () => tlsConnect({ socket, ...(servername ? { servername } : {}), ...tls });
    return this.exchange(url, (done) => httpsRequest(url, { method: 'GET', headers, ...tls, createConnection: secure }, done));
  }

  /** Sends the request `open` makes and resolves with its answer; the timeouts of every request apply. */
  private exchange(url: URL, open: (done: (answer: IncomingMessage) => void) => ClientRequest): Promise<Answer> {
    return new Promise((resolve, reject) => {
      // A registry that does not answer soon is not waited for: containerd fetches the blob instead.
      const answerTimer = setTimeout(() => req.destroy(new RegistryFetchError(`no answer from ${url.origin} within ${this.answerTimeoutMs / 1000} s`)), this.answerTimeoutMs);
      const req = open((answer) => {
        clearTimeout(answerTimer);
        resolve(answer as Answer);
      });
      req.setTimeout(this.idleTimeoutMs, () => req.destroy(new RegistryFetchError(`no data from ${url.origin} for ${this.idleTimeoutMs / 1000} s`)));
      req.on('error', (err) => {
        clearTimeout(answerTimer);
        reject(asFetchError(err));
      });
      req.end();
    });
  }

  /** A CONNECT tunnel through `proxy` to `url`'s host. */
  private tunnel(proxy: URL, url: URL, viaProxy: OutgoingHttpHeaders): Promise<Socket> {
    const target = `${url.hostname}:${url.port || '443'}`;
    return new Promise((resolve, reject) => {
      const req = requestTo(proxy)(proxyOrigin(proxy), { method: 'CONNECT', path: target, headers: { ...viaProxy, host: target } });
      const timer = setTimeout(() => req.destroy(new RegistryFetchError(`no answer from proxy ${proxy.origin} within ${this.answerTimeoutMs / 1000} s`)), this.answerTimeoutMs);
      req.on('connect', (answer: IncomingMessage, socket: Socket) => {
        clearTimeout(timer);
        if (answer.statusCode === 200) {
          resolve(socket);
          return;
        }
        socket.destroy();
        reject(new RegistryFetchError(`proxy ${proxy.origin} refused a tunnel to ${target}: HTTP ${answer.statusCode}`));
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(asFetchError(err));
      });
      req.end();
    });
  }

  private async anonymousToken(challenge: Map<string, string>, location: RepositoryLocation, endpoint: RegistryEndpoint): Promise<Token> {
    const realm = challenge.get('realm');
    let url: URL;
    try {
      url = new URL(realm ?? '');
    } catch {
      throw new RegistryFetchError(`the registry's bearer challenge has no usable realm (${JSON.stringify(realm)})`);
    }
    const service = challenge.get('service');
    if (service) url.searchParams.set('service', service);
    url.searchParams.set('scope', challenge.get('scope') ?? `repository:${location.repository}:pull`);
    const answer = await this.get(url, endpoint, undefined, 'application/json');
    const body = await readAll(answer, 64 * 1024);
    if (answer.statusCode !== 200) throw new RegistryFetchError(`the token service at ${url.origin} answered HTTP ${answer.statusCode}`);
    let parsed: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new RegistryFetchError(`the token service at ${url.origin} did not answer JSON`);
    }
    const value = typeof parsed.token === 'string' ? parsed.token : parsed.access_token;
    if (typeof value !== 'string' || value === '') throw new RegistryFetchError(`the token service at ${url.origin} gave no token`);
    // The protocol's default lifetime is 60 s; renew a little early.
    const seconds = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 60;
    return { value, expiresAt: Date.now() + Math.max(0, seconds - 10) * 1000 };
  }
}

function asFetchError(err: Error): RegistryFetchError {
  return err instanceof RegistryFetchError ? err : new RegistryFetchError(err.message, { cause: err });
}

/** node:http or node:https, as the proxy's own URL says. */
function requestTo(proxy: URL): typeof httpRequest {
  return proxy.protocol === 'https:' ? httpsRequest : httpRequest;
}

/** The proxy's address without its credentials, which go only in Proxy-Authorization. */
function proxyOrigin(proxy: URL): URL {
  return new URL(proxy.origin);
}

/** Basic credentials written into the proxy URL (`http://user:password@proxy:3128`). */
function proxyAuthorization(proxy: URL): OutgoingHttpHeaders {
  if (!proxy.username) return {};
  const credentials = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`;
  return { 'proxy-authorization': `Basic ${Buffer.from(credentials).toString('base64')}` };
}

/** The parameters of a `Bearer` challenge, or undefined for any other scheme. */
export function bearerChallenge(headers: IncomingHttpHeaders): Map<string, string> | undefined {
  const header = headers['www-authenticate'];
  const match = /^\s*bearer\s+(.*)$/i.exec(Array.isArray(header) ? (header[0] ?? '') : (header ?? ''));
  if (!match) return undefined;
  const params = new Map<string, string>();
  for (const [, key, quoted, bare] of match[1]!.matchAll(/([a-zA-Z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params.set(key!.toLowerCase(), quoted !== undefined ? quoted.replace(/\\(.)/g, '$1') : bare!);
  }
  return params;
}

/** The body, with a broken connection reported as the registry's failure rather than the conversion's. */
async function* checkedBody(answer: Answer, what: string, onFailure: () => void): AsyncIterable<Uint8Array> {
  try {
    for await (const chunk of answer) yield chunk as Buffer;
  } catch (err) {
    onFailure();
    throw err instanceof RegistryFetchError ? err : new RegistryFetchError(`reading ${what} failed: ${(err as Error).message}`, { cause: err });
  } finally {
    answer.destroy();
  }
}

async function readAll(answer: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of answer) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      answer.destroy();
      throw new RegistryFetchError(`an answer of more than ${limit} bytes where a token was expected`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
