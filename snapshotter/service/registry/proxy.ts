/**
 * The HTTP proxy a registry request goes through, from the environment the
 * way containerd (Go's net/http ProxyFromEnvironment) reads it: HTTPS_PROXY
 * for https URLs, HTTP_PROXY for http ones (upper case first, then lower
 * case), a proxy without a scheme being http://; NO_PROXY lists what goes
 * direct — `*`, a domain (itself and its subdomains), `.domain` (its
 * subdomains only), an IP address or CIDR prefix, each optionally with a
 * port. localhost and loopback addresses never go through a proxy.
 */
import { BlockList, isIP } from 'node:net';

export function proxyFor(url: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  const setting = url.protocol === 'https:' ? firstOf(env, 'HTTPS_PROXY', 'https_proxy') : firstOf(env, 'HTTP_PROXY', 'http_proxy');
  if (!setting) return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || isLoopback(host)) return undefined;
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  if (bypassed(host, port, firstOf(env, 'NO_PROXY', 'no_proxy') ?? '')) return undefined;
  try {
    return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(setting) ? setting : `http://${setting}`);
  } catch {
    return undefined;
  }
}

function firstOf(env: NodeJS.ProcessEnv, ...names: string[]): string | undefined {
  for (const name of names) if (env[name]) return env[name];
  return undefined;
}

function isLoopback(host: string): boolean {
  const family = isIP(host);
  return (family === 4 && host.startsWith('127.')) || (family === 6 && host === '::1');
}

function bypassed(host: string, port: string, noProxy: string): boolean {
  for (const raw of noProxy.split(',').map((e) => e.trim().toLowerCase()).filter(Boolean)) {
    if (raw === '*') return true;
    const { name, port: onlyPort } = splitPort(raw);
    if (onlyPort !== undefined && onlyPort !== port) continue;
    if (name.includes('/')) {
      if (isIP(host) && inCidr(host, name)) return true;
    } else if (isIP(name)) {
      if (host === name) return true;
    } else if (name.startsWith('.')) {
      if (host.endsWith(name)) return true;
    } else if (host === name || host.endsWith(`.${name}`)) {
      return true;
    }
  }
  return false;
}

function splitPort(entry: string): { name: string; port: string | undefined } {
  const bracketed = /^\[(.+)\](?::(\d+))?$/.exec(entry);
  if (bracketed) return { name: bracketed[1]!, port: bracketed[2] };
  const colon = entry.lastIndexOf(':');
  // An IPv6 address has colons of its own; a port follows only a name or an IPv4 address.
  if (colon < 0 || entry.indexOf(':') !== colon || !/^\d+$/.test(entry.slice(colon + 1))) return { name: entry, port: undefined };
  return { name: entry.slice(0, colon), port: entry.slice(colon + 1) };
}

function inCidr(host: string, cidr: string): boolean {
  const [network, bits] = cidr.split('/') as [string, string];
  const family = isIP(network);
  const prefix = Number(bits);
  if (family === 0 || !Number.isInteger(prefix) || family !== isIP(host)) return false;
  const list = new BlockList();
  try {
    list.addSubnet(network, prefix, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
  return list.check(host, family === 4 ? 'ipv4' : 'ipv6');
}
