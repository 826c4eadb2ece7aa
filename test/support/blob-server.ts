/**
 * A small OCI distribution server in the test process (node:http on
 * 127.0.0.1): it serves `GET /v2/<repository>/blobs/<digest>` from memory and
 * can behave like the registries a node meets — a bearer-token challenge,
 * a redirect to blob storage, a body cut short, an answer that never comes.
 * Every request is recorded. The real registry (Debian's docker-registry,
 * registry.ts) is used where containerd pulls; this one is for the failure
 * modes that registry cannot be made to show.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  path: string;
  query: Record<string, string>;
  authorization: string | undefined;
}

export interface BlobServerBehaviour {
  /** Ask for `Bearer <token>`: 401 with a challenge naming this server's `/token` as the realm. */
  token?: string;
  /** Answer blob requests with a 307 to this URL plus the request path. */
  redirectTo?: string;
  /** Send only this many bytes of each blob, then drop the connection. */
  cutAfter?: number;
  /** Never answer blob requests. */
  silent?: boolean;
  /** Answer blob requests with this status and no body. */
  status?: number;
}

export class BlobServer {
  readonly requests: RecordedRequest[] = [];
  readonly blobs = new Map<string, Buffer>();
  behaviour: BlobServerBehaviour = {};
  private readonly server: Server;
  private readonly hung: ServerResponse[] = [];

  private constructor(
    server: Server,
    private readonly secure = false,
  ) {
    this.server = server;
  }

  /** With `tls` (PEM key and certificate), it serves HTTPS. */
  static async start(options: { tls?: { key: string; cert: string } } = {}): Promise<BlobServer> {
    const server = options.tls ? createTlsServer(options.tls) : createServer();
    const blobServer = new BlobServer(server, options.tls !== undefined);
    server.on('request', (req, res) => blobServer.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return blobServer;
  }

  /** `http://127.0.0.1:<port>`, or https. */
  get url(): string {
    return `${this.secure ? 'https' : 'http'}://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stores `data`; returns its digest. */
  add(data: Buffer): string {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    this.blobs.set(digest, data);
    return digest;
  }

  async stop(): Promise<void> {
    for (const res of this.hung) res.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push({ path: url.pathname, query: Object.fromEntries(url.searchParams), authorization: req.headers.authorization });
    const b = this.behaviour;
    if (url.pathname === '/token') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: b.token, expires_in: 300 }));
      return;
    }
    const blob = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (!blob) {
      res.writeHead(404).end();
      return;
    }
    if (b.token !== undefined && req.headers.authorization !== `Bearer ${b.token}`) {
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${this.url}/token",service="test-registry",scope="repository:${blob[1]}:pull"` }).end();
      return;
    }
    if (b.silent) {
      this.hung.push(res);
      return;
    }
    if (b.status !== undefined) {
      res.writeHead(b.status).end();
      return;
    }
    if (b.redirectTo !== undefined) {
      res.writeHead(307, { location: `${b.redirectTo}${url.pathname}` }).end();
      return;
    }
    const data = this.blobs.get(blob[2]!);
    if (!data) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream' });
    if (b.cutAfter === undefined) {
      res.end(data);
      return;
    }
    res.write(data.subarray(0, b.cutAfter), () => res.destroy());
  }
}
