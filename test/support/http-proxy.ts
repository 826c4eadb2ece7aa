/**
 * A forward HTTP proxy in the test process (node:http on 127.0.0.1), as a
 * node's egress proxy behaves: an http URL arrives whole and is fetched on
 * the client's behalf; https goes through a CONNECT tunnel. It records what
 * it was asked, with the headers a proxy sees.
 */
import { createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export interface ProxiedRequest {
  method: string;
  /** The absolute URL of a GET, the `host:port` of a CONNECT. */
  target: string;
  proxyAuthorization: string | undefined;
  authorization: string | undefined;
}

export class HttpProxy {
  readonly requests: ProxiedRequest[] = [];
  /** Where every target host is reached (tests name registries on loopback by other names: loopback is never proxied). */
  resolveTo: string | undefined;
  private readonly server: Server;
  private readonly tunnels = new Set<Socket>();

  private constructor(server: Server) {
    this.server = server;
  }

  static async start(): Promise<HttpProxy> {
    const proxy = new HttpProxy(createServer());
    proxy.server.on('request', (req, res) => {
      proxy.record(req.method ?? '', req.url ?? '', req.headers);
      const target = new URL(req.url ?? '');
      const { 'proxy-authorization': _dropped, ...headers } = req.headers;
      const upstream = request(target, { method: req.method, headers, ...(proxy.resolveTo ? { hostname: proxy.resolveTo } : {}) }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.writeHead(502).end());
      req.pipe(upstream);
    });
    proxy.server.on('connect', (req, client: Socket, head: Buffer) => {
      proxy.record('CONNECT', req.url ?? '', req.headers);
      const [host, port] = (req.url ?? '').split(/:(?=\d+$)/) as [string, string];
      const upstream = connect(Number(port), proxy.resolveTo ?? host.replace(/^\[|\]$/g, ''), () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      for (const socket of [client, upstream]) {
        proxy.tunnels.add(socket);
        socket.on('error', () => undefined);
        socket.on('close', () => proxy.tunnels.delete(socket));
      }
      upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    });
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  /** `http://127.0.0.1:<port>`. */
  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    for (const socket of this.tunnels) socket.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private record(method: string, target: string, headers: Record<string, string | string[] | undefined>): void {
    const one = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
    this.requests.push({ method, target, proxyAuthorization: one(headers['proxy-authorization']), authorization: one(headers.authorization) });
  }
}
